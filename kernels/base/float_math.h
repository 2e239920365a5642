#pragma once
// Float math shared by the kernel families (quantize, meta): rounding, fma, bit casts, and a
// branch-free exp and tanh. Everything is MQ_HD and written with explicit fma() wherever a
// multiply feeds an add, so host and device round identically.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/base/host_device.h"

namespace mq::kernels {

// ---- rounding: half to even, as nearbyint (default rounding mode) ----
MQ_HD_INLINE float round_half_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);
#endif
}
MQ_HD_INLINE double round_half_even(double x) {
#if defined(__CUDA_ARCH__)
  return rint(x);
#else
  return std::nearbyint(x);
#endif
}

MQ_HD_INLINE float fma_of(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return fmaf(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
MQ_HD_INLINE double fma_of(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

MQ_HD_INLINE float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

template <class T>
MQ_HD_INLINE T abs_of(T x) {
  return x < T(0) ? -x : x;
}
// ---- exp and tanh ----
// f32: our own branch-free exp and tanh so that (a) the CPU loops vectorize (libm's expf and
// tanhf are scalar calls) and (b) host and device compute the same bits.
// exp: Cody-Waite reduction by ln 2 and a degree-7 Taylor polynomial, 2^k built from its bits;
//   the argument is clamped to [-87, 88] (below, exp returns the smallest normal's order of
//   magnitude instead of 0; NaN passes through). About 1 ulp.
// tanh: max error about 2 ulp against the exact value:
//   |x| < 0.5: odd polynomial x + x^3 P(x^2), P of degree 4 fitted for the least maximum
//   relative error on [0, 0.5] (9.5e-10, against 2e-9 for the Taylor series to x^17 it
//   replaced, with three fewer fma; worst 0.63 ulp over the floats there, as before);
//   otherwise 1 - 2 / (exp(2|x|) + 1) with exp by Cody-Waite reduction and a degree-7 Taylor
//   polynomial, 2^k built from its bits; |x| is clamped at 10 (tanh rounds to 1 above 9.02).
MQ_HD_INLINE float exp_reduced_f32(float y) {  // exp(y) for -87 <= y <= 88
  const float k = round_half_even(y * 1.44269504088896341f);
  float r = fma_of(-k, 0.693145751953125f, y);
  r = fma_of(-k, 1.42860676533018704e-06f, r);
  float p = 1.0f / 5040.0f;
  p = fma_of(p, r, 1.0f / 720.0f);
  p = fma_of(p, r, 1.0f / 120.0f);
  p = fma_of(p, r, 1.0f / 24.0f);
  p = fma_of(p, r, 1.0f / 6.0f);
  p = fma_of(p, r, 0.5f);
  p = fma_of(p, r, 1.0f);
  p = fma_of(p, r, 1.0f);
  // A NaN y makes k NaN, and converting NaN to int is undefined (UBSan stops there): a NaN k
  // fails the compare and becomes -127, a finite scale for p, which is NaN already. For
  // -87 <= y <= 88, k lies in [-126, 127] and passes unchanged. One max instruction, vectorizes.
  const float k_finite = k > -127.0f ? k : -127.0f;
  return p * bits_to_float((static_cast<int32_t>(k_finite) + 127) << 23);
}

MQ_HD_INLINE float exp_f32(float y) {
  return exp_reduced_f32(y < -87.0f ? -87.0f : (y > 88.0f ? 88.0f : y));
}

// tanh for |x| < 0.5 (the branch tanh_f32 takes there, bit for bit): the odd polynomial alone,
// about a third of tanh_f32's operations. Weights rarely reach 0.5, so the quantizer loops take
// it for every chunk of W that lies below (kernels/quantize/quantize_cpu.cpp).
MQ_HD_INLINE float tanh_small_f32(float x) {
  const float s = x * x;
  float p = -0.006714577374607886f;
  p = fma_of(p, s, 0.02133567348746506f);
  p = fma_of(p, s, -0.053906397015328275f);
  p = fma_of(p, s, 0.13333017632689442f);
  p = fma_of(p, s, -0.3333332807697358f);
  return fma_of(x * s, p, x);
}
constexpr float kTanhSmallBound = 0.5f;  // tanh_f32(x) == tanh_small_f32(x) for |x| below

MQ_HD_INLINE float tanh_f32(float x) {
  const float a = abs_of(x);
  const float small = tanh_small_f32(x);
  // large branch
  const float e = exp_reduced_f32(2.0f * (a > 10.0f ? 10.0f : a));  // NaN stays NaN
  const float big = 1.0f - 2.0f / (e + 1.0f);
  const float large = x < 0.0f ? -big : big;
  return a < kTanhSmallBound ? small : large;
}

}  // namespace mq::kernels
