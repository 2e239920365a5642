#pragma once
// Per-element math of the weight quantizers (docs/metaquant.md §3): the single source of truth
// for the CPU loops (quantize_cpu.cpp) and the CUDA kernels (quantize.cu). Everything here is
// MQ_HD, branch-free where it sits in a hot loop (so the CPU loops vectorize), and written with
// explicit fma() wherever a multiply feeds an add, so host and device round identically and the
// CUDA results match the CPU ones bit for bit (same codes, same W~).
//
// Adding a quantizer or a bitwidth: see docs/extending.md.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/base/host_device.h"
#include "kernels/base/float_math.h"

namespace mq::kernels {

enum class Quantizer : int { dorefa, bwn, bwn_f, ternary };

constexpr int kMinDorefaBits = 1;
constexpr int kMaxDorefaBits = 8;
// Ternary: threshold = kTernaryRatio * mean|W| (the usual TWN choice).
constexpr float kTernaryRatio = 0.7f;

template <class T>
MQ_HD_INLINE T sign_value(T x) {  // sign(0) = 0
  return static_cast<T>((x > T(0)) - (x < T(0)));
}

// SmallW: the caller knows |x| < kTanhSmallBound, where the f32 polynomial branch alone gives the
// same bits as the full tanh_f32 (f64 has one path).
template <bool SmallW = false>
MQ_HD_INLINE float quant_tanh(float x) {
  return SmallW ? tanh_small_f32(x) : tanh_f32(x);
}
template <bool SmallW = false>
MQ_HD_INLINE double quant_tanh(double x) {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  return std::tanh(x);
#endif
}

// ---- dorefa, k bits: n = 2^k - 1 ----
// m = max|tanh(W)| (reduced separately, as tanh(max|W|)). W~ = tanh(W) / (2m) + 1/2, W^ = 2 round(n W~) / n - 1.
// With m = 0 (W all zero) W~ is defined as 1/2 (the limit of tanh(W)/(2m) + 1/2 at W = 0).
// Calls f(std::integral_constant<int, B>{}) for every B of kMinDorefaBits..kMaxDorefaBits: the
// compile-time instantiations a runtime bit count dispatches to (host code).
template <int B = kMinDorefaBits, class F>
void for_each_dorefa_bits(F&& f) {
  if constexpr (B <= kMaxDorefaBits) {
    f(std::integral_constant<int, B>{});
    for_each_dorefa_bits<B + 1>(f);
  }
}

template <int Bits>
constexpr int dorefa_levels() {
  static_assert(Bits >= kMinDorefaBits && Bits <= kMaxDorefaBits, "dorefa bits out of range");
  return (1 << Bits) - 1;
}

// m = max|tanh W| = tanh(max|W|), since tanh is odd and increasing: the reduction reads |W|
// only and tanh runs once per tensor instead of once per element in the reduction pass.
// + 0 turns -0 into +0: the CUDA reduction takes an atomicMax over the float bits, which orders
// non-negative floats only (-0's bits would beat every positive value).
template <class T>
MQ_HD_INLINE T dorefa_reduce_value(T w) {  // the value whose max gives the dorefa scale
  return abs_of(w) + T(0);
}
template <class T>
MQ_HD_INLINE T dorefa_scale_from_max(T max_abs) {
  return abs_of(quant_tanh(max_abs));
}

template <class T, int Bits, bool SmallW = false>
MQ_HD_INLINE void dorefa_forward_element(T w, T m, T& w_tilde, T& w_hat) {
  constexpr T n = T(dorefa_levels<Bits>());
  const T t = quant_tanh<SmallW>(w);
  const T wt = m > T(0) ? t / (T(2) * m) + T(0.5) : T(0.5);
  const T q = round_half_even(n * wt);
  w_tilde = wt;
  w_hat = T(2) * (q / n) - T(1);
}

// STE: g_W~ = 2 g_W^ [|W~| <= 1] (always 1: W~ lies in [0, 1] by construction, since
// |tanh W| <= m), then through W~ = tanh(W)/(2 sg(m)) + 1/2: g_W = g_W^ (1 - tanh^2 W) / m.
template <bool SmallW = false, class T>
MQ_HD_INLINE T dorefa_backward_element(T w, T g_hat, T m) {
  const T t = quant_tanh<SmallW>(w);
  return m > T(0) ? (g_hat / m) * fma_of(-t, t, T(1)) : T(0);
}

// Calibration c = (1 - tanh^2 W) / m (0 when m = 0): maps g_W^ to the STE g_W.
template <bool SmallW = false, class T>
MQ_HD_INLINE T dorefa_calibration_element(T w, T m) {
  const T t = quant_tanh<SmallW>(w);
  return m > T(0) ? fma_of(-t, t, T(1)) / m : T(0);
}

// ---- BWN / BWN-F: W~ = W, alpha = mean|W| (per tensor or per output channel) ----
template <class T>
MQ_HD_INLINE T bwn_forward_element(T w, T alpha) {
  return alpha * sign_value(w);
}
// STE, shared by BWN, BWN-F and ternary: g_W = scale * g_W^ * [|W~| <= 1] with W~ = W.
template <class T>
MQ_HD_INLINE T scaled_ste_backward_element(T w, T g_hat, T scale) {
  return abs_of(w) <= T(1) ? scale * g_hat : T(0);
}

// ---- ternary (worked example): W~ = W; delta = 0.7 mean|W|; S = {i : |W_i| > delta};
// a = mean over S of |W_i| (0 when S is empty, i.e. W all zero); W^ = a sign(W) [|W| > delta].
template <class T>
MQ_HD_INLINE T ternary_threshold(T mean_abs) {
  return T(kTernaryRatio) * mean_abs;
}
template <class T>
MQ_HD_INLINE T ternary_forward_element(T w, T delta, T a) {
  // Branch-free (a conditional here kept the CPU loop scalar): a 0/1 mask times a sign(w); the
  // + 0 turns the -0 of a masked negative weight into +0.
  const T keep = static_cast<T>(abs_of(w) > delta);
  return keep * (a * sign_value(w)) + T(0);
}

}  // namespace mq::kernels
