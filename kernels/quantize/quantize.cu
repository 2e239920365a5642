// CUDA weight quantizers (f32). Per forward: one reduction kernel (block reduction + one atomic
// per block; two for ternary), a one-thread finalize where a mean must be formed, and one
// elementwise kernel writing W~ and W^ together. Grid-stride loops, float4 loads and stores when
// every pointer is 16-byte aligned and the channel slice length is a multiple of 4. The math is
// quantize_math.h, shared with the CPU, so codes and W~ match the CPU bit for bit.
// Passes over W alternate direction (a reduction front to back, the next pass back to front), so
// a pass starts on the part of W the previous one left in L2; outputs are streaming stores
// (evict first), which keeps them from pushing W out of L2. For a W larger than L2 this saves
// DRAM reads; for the ResNet layers W fits in L2 either way.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/quantize/quantize.h"
#include "kernels/quantize/quantizer_table.h"

namespace mq::kernels {
namespace {
constexpr int kThreads = 256;


int sm_count() {
  int dev = 0, count = 0;
  MQ_CUDA_CHECK(cudaGetDevice(&dev));
  MQ_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
  return count > 0 ? count : 1;
}

// Blocks along x for `channels` slices of `per` elements each (grid y = channels).
dim3 slice_grid(int64_t per, int64_t channels, bool vec) {
  static const int target = sm_count() * 8;
  const int64_t items = vec ? (per + 3) / 4 : per;
  int64_t bx = (items + kThreads - 1) / kThreads;
  int64_t cap = target / channels;
  if (cap < 1) cap = 1;
  if (bx > cap) bx = cap;
  if (bx < 1) bx = 1;
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(channels));
}

// Per-channel kernels put the channel on grid y, which CUDA caps at 65535: launch in chunks.
constexpr int64_t kMaxGridY = 65535;

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ float4 load4(const float* p, int64_t j) {
  return __ldg(reinterpret_cast<const float4*>(p) + j);
}
__device__ __forceinline__ void store4(float* p, int64_t j, float4 v) {
  __stcs(reinterpret_cast<float4*>(p) + j, v);
}
__device__ __forceinline__ void store1(float* p, int64_t i, float v) { __stcs(p + i, v); }

// Index of the j-th item of a pass over `count` items, front to back or back to front.
template <bool Reverse>
__device__ __forceinline__ int64_t pass_index(int64_t j, int64_t count) {
  return Reverse ? count - 1 - j : j;
}

// Reduction over the block; the result is valid in thread 0. Safe to call more than once per
// kernel (it synchronizes before reusing its shared memory).
template <class T, class Op>
__device__ T block_reduce(T v, T identity, Op op) {
  __shared__ T partial[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  }
  return v;
}
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct AddOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// ---- reductions ----
// max|w| over [0, n) into *out (float bits, non-negative: atomicMax on the bits is exact); the
// scale m = tanh of it (dorefa_scale_from_max) is taken by the kernels that read it.
template <bool Vec>
__global__ void dorefa_max_kernel(const float* w, int64_t n, unsigned* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  float m = 0.f;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t j = start; j < n / 4; j += stride) {
      const float4 x = load4(w, j);
      m = fmaxf(m, fmaxf(fmaxf(dorefa_reduce_value(x.x), dorefa_reduce_value(x.y)),
                         fmaxf(dorefa_reduce_value(x.z), dorefa_reduce_value(x.w))));
    }
    tail = n / 4 * 4;
  }
  for (int64_t i = tail + start; i < n; i += stride) m = fmaxf(m, dorefa_reduce_value(w[i]));
  m = block_reduce(m, 0.f, MaxOp{});
  if (threadIdx.x == 0) atomicMax(out, __float_as_uint(m));
}

// sums[k] += sum of |w| over slice k (grid y = channel), accumulated in double.
template <bool Vec>
__global__ void abs_sum_kernel(const float* w, int64_t per, double* sums) {
  const float* x = w + static_cast<int64_t>(blockIdx.y) * per;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  double s = 0;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t j = start; j < per / 4; j += stride) {
      const float4 v = load4(x, j);
      s += static_cast<double>(fabsf(v.x)) + fabsf(v.y) + static_cast<double>(fabsf(v.z)) +
           fabsf(v.w);
    }
    tail = per / 4 * 4;
  }
  for (int64_t i = tail + start; i < per; i += stride) s += fabsf(x[i]);
  s = block_reduce(s, 0.0, AddOp{});
  if (threadIdx.x == 0) atomicAdd(&sums[blockIdx.y], s);
}

__device__ __forceinline__ float ternary_delta(const double* ws, int64_t n) {
  return ternary_threshold(static_cast<float>(ws[0] / static_cast<double>(n)));
}

// ws[1] += sum of |w| above delta, ws[2] += their count (ws[0] = sum |w|). Runs back to front,
// after the front-to-back |w| sum.
__global__ void ternary_above_kernel(const float* w, int64_t n, double* ws) {
  const float delta = ternary_delta(ws, n);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  double s = 0, c = 0;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    const float a = fabsf(w[pass_index<true>(k, n)]);
    if (a > delta) s += a, c += 1.0;
  }
  s = block_reduce(s, 0.0, AddOp{});
  c = block_reduce(c, 0.0, AddOp{});
  if (threadIdx.x == 0) {
    atomicAdd(&ws[1], s);
    atomicAdd(&ws[2], c);
  }
}

__global__ void mean_finalize_kernel(const double* sums, int64_t channels, int64_t per,
                                     float* scale) {
  for (int64_t k = threadIdx.x; k < channels; k += blockDim.x)
    scale[k] = static_cast<float>(sums[k] / static_cast<double>(per));
}

__global__ void ternary_finalize_kernel(const double* ws, float* scale) {
  scale[0] = ws[2] > 0 ? static_cast<float>(ws[1] / ws[2]) : 0.f;
}

// ---- elementwise ----
// Every thread forms m = tanh(max|w|) from the reduced max itself (one tanh per thread saves a
// one-thread kernel launch); the first thread also stores it as the scale.
template <int Bits, bool Vec>
__global__ void dorefa_forward_kernel(const float* w, int64_t n, const unsigned* max_bits,
                                      float* scale, float* w_tilde, float* w_hat) {
  const float m = dorefa_scale_from_max(__uint_as_float(*max_bits));
  if (blockIdx.x == 0 && threadIdx.x == 0) scale[0] = m;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t k = start; k < n / 4; k += stride) {
      const int64_t j = pass_index<true>(k, n / 4);  // after the max pass: back to front
      const float4 x = load4(w, j);
      float4 t, h;
      dorefa_forward_element<float, Bits>(x.x, m, t.x, h.x);
      dorefa_forward_element<float, Bits>(x.y, m, t.y, h.y);
      dorefa_forward_element<float, Bits>(x.z, m, t.z, h.z);
      dorefa_forward_element<float, Bits>(x.w, m, t.w, h.w);
      store4(w_tilde, j, t);
      store4(w_hat, j, h);
    }
    tail = n / 4 * 4;
  }
  for (int64_t i = tail + start; i < n; i += stride) {
    float t, h;
    dorefa_forward_element<float, Bits>(w[i], m, t, h);
    store1(w_tilde, i, t);
    store1(w_hat, i, h);
  }
}

// Sign quantizers (grid y = channel): bwn/bwn_f (alpha = scale[k]) and ternary (threshold from
// ws, a = scale[0]). w_tilde may be null. Reverse: channels and elements back to front.
template <bool Ternary, bool Reverse, bool Vec>
__global__ void sign_forward_kernel(const float* w, int64_t per, const float* scale,
                                    const double* ws, int64_t n, float* w_tilde, float* w_hat) {
  const int64_t channel = pass_index<Reverse>(blockIdx.y, gridDim.y);
  const int64_t base = channel * per;
  const float s = scale[channel];
  const float delta = Ternary ? ternary_delta(ws, n) : 0.f;
  auto q = [&](float x) {
    return Ternary ? ternary_forward_element(x, delta, s) : bwn_forward_element(x, s);
  };
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t k = start; k < per / 4; k += stride) {
      const int64_t j = pass_index<Reverse>(k, per / 4);
      const float4 x = load4(w + base, j);
      store4(w_hat + base, j, make_float4(q(x.x), q(x.y), q(x.z), q(x.w)));
      if (w_tilde) store4(w_tilde + base, j, x);
    }
    tail = per / 4 * 4;
  }
  for (int64_t i = base + tail + start; i < base + per; i += stride) {
    store1(w_hat, i, q(w[i]));
    if (w_tilde) store1(w_tilde, i, w[i]);
  }
}

template <bool Dorefa, bool Vec>
__global__ void backward_kernel(const float* w, const float* g_hat, const float* scale,
                                int64_t per, float* g_w) {
  const int64_t base = static_cast<int64_t>(blockIdx.y) * per;
  const float s = scale[blockIdx.y];
  auto f = [&](float x, float g) {
    return Dorefa ? dorefa_backward_element(x, g, s) : scaled_ste_backward_element(x, g, s);
  };
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t j = start; j < per / 4; j += stride) {
      const float4 x = load4(w + base, j), g = load4(g_hat + base, j);
      store4(g_w + base, j, make_float4(f(x.x, g.x), f(x.y, g.y), f(x.z, g.z), f(x.w, g.w)));
    }
    tail = per / 4 * 4;
  }
  for (int64_t i = base + tail + start; i < base + per; i += stride) g_w[i] = f(w[i], g_hat[i]);
}

template <bool Vec>
__global__ void calibration_kernel(const float* w, int64_t n, const unsigned* max_bits, float* c) {
  const float m = dorefa_scale_from_max(__uint_as_float(*max_bits));
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t start = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t tail = 0;
  if constexpr (Vec) {
    for (int64_t k = start; k < n / 4; k += stride) {
      const int64_t j = pass_index<true>(k, n / 4);  // after the max pass: back to front
      const float4 x = load4(w, j);
      store4(c, j, make_float4(dorefa_calibration_element(x.x, m), dorefa_calibration_element(x.y, m),
                               dorefa_calibration_element(x.z, m), dorefa_calibration_element(x.w, m)));
    }
    tail = n / 4 * 4;
  }
  for (int64_t i = tail + start; i < n; i += stride) store1(c, i, dorefa_calibration_element(w[i], m));
}

__global__ void fill_kernel(float* c, int64_t n, float value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    c[i] = value;
}

// ---- launch helpers ----
template <bool Vec>
void launch_dorefa_max(const float* w, int64_t n, unsigned* out, cudaStream_t s) {
  MQ_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(unsigned), s));
  dorefa_max_kernel<Vec><<<slice_grid(n, 1, Vec), kThreads, 0, s>>>(w, n, out);
  MQ_CHECK_LAUNCH("dorefa_max_kernel", s);
}

// The max goes to the workspace (its bits, for the atomicMax), m to scale[0].
template <int Bits>
void launch_dorefa_forward(const float* w, int64_t n, float* w_tilde, float* w_hat, float* scale,
                           void* workspace, bool vec, cudaStream_t s) {
  if (workspace == nullptr)
    raise_cuda_error(cudaErrorInvalidValue, "dorefa forward: no workspace for the max", __FILE__,
                     __LINE__);
  auto* max_bits = static_cast<unsigned*>(workspace);
  vec ? launch_dorefa_max<true>(w, n, max_bits, s) : launch_dorefa_max<false>(w, n, max_bits, s);
  if (vec) {
    dorefa_forward_kernel<Bits, true><<<slice_grid(n, 1, true), kThreads, 0, s>>>(
        w, n, max_bits, scale, w_tilde, w_hat);
  } else {
    dorefa_forward_kernel<Bits, false><<<slice_grid(n, 1, false), kThreads, 0, s>>>(
        w, n, max_bits, scale, w_tilde, w_hat);
  }
  MQ_CHECK_LAUNCH("dorefa_forward_kernel", s);
}

template <bool Vec>
void launch_abs_sum(const float* w, int64_t per, int64_t channels, double* sums, cudaStream_t s) {
  for (int64_t c0 = 0; c0 < channels; c0 += kMaxGridY) {
    const int64_t chunk = std::min(kMaxGridY, channels - c0);
    abs_sum_kernel<Vec><<<slice_grid(per, chunk, Vec), kThreads, 0, s>>>(w + c0 * per, per, sums + c0);
    MQ_CHECK_LAUNCH("abs_sum_kernel", s);
  }
}

// bwn reads W once before (the |w| sum): back to front; ternary twice: front to back.
template <bool Ternary, bool Vec>
void launch_sign_forward(const float* w, int64_t per, int64_t channels, const float* scale,
                         const double* ws, float* w_tilde, float* w_hat, cudaStream_t s) {
  for (int64_t c0 = 0; c0 < channels; c0 += kMaxGridY) {
    const int64_t chunk = std::min(kMaxGridY, channels - c0), off = c0 * per;
    sign_forward_kernel<Ternary, !Ternary, Vec><<<slice_grid(per, chunk, Vec), kThreads, 0, s>>>(
        w + off, per, scale + c0, ws, per * channels, w_tilde ? w_tilde + off : nullptr, w_hat + off);
    MQ_CHECK_LAUNCH("sign_forward_kernel", s);
  }
}
}  // namespace

void quantize_forward_cuda(Quantizer q, int bits, const float* w, int64_t n, int64_t channels,
                           float* w_tilde, float* w_hat, float* scale, void* workspace,
                           void* stream) {
  check_quantize_args(q, bits, n, channels);
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t per = n / channels;
  const bool vec = per % 4 == 0 && aligned16(w) && aligned16(w_tilde) && aligned16(w_hat);
  auto* ws = static_cast<double*>(workspace);
  switch (q) {
    case Quantizer::dorefa:
      for_each_dorefa_bits([&](auto b) {
        if (bits == b.value)
          launch_dorefa_forward<decltype(b)::value>(w, n, w_tilde, w_hat, scale, workspace, vec, s);
      });
      return;
    case Quantizer::bwn:
    case Quantizer::bwn_f:
      MQ_CUDA_CHECK(cudaMemsetAsync(ws, 0, workspace_bytes_for(q, channels), s));
      vec ? launch_abs_sum<true>(w, per, channels, ws, s) : launch_abs_sum<false>(w, per, channels, ws, s);
      mean_finalize_kernel<<<1, kThreads, 0, s>>>(ws, channels, per, scale);
      MQ_CHECK_LAUNCH("mean_finalize_kernel", s);
      return vec ? launch_sign_forward<false, true>(w, per, channels, scale, ws, w_tilde, w_hat, s)
                 : launch_sign_forward<false, false>(w, per, channels, scale, ws, w_tilde, w_hat, s);
    case Quantizer::ternary:
      MQ_CUDA_CHECK(cudaMemsetAsync(ws, 0, workspace_bytes_for(q, 1), s));
      vec ? launch_abs_sum<true>(w, n, 1, ws, s) : launch_abs_sum<false>(w, n, 1, ws, s);
      ternary_above_kernel<<<slice_grid(n, 1, false), kThreads, 0, s>>>(w, n, ws);
      MQ_CHECK_LAUNCH("ternary_above_kernel", s);
      ternary_finalize_kernel<<<1, 1, 0, s>>>(ws, scale);
      MQ_CHECK_LAUNCH("ternary_finalize_kernel", s);
      return vec ? launch_sign_forward<true, true>(w, n, 1, scale, ws, w_tilde, w_hat, s)
                 : launch_sign_forward<true, false>(w, n, 1, scale, ws, w_tilde, w_hat, s);
  }
}

void quantize_backward_cuda(Quantizer q, const float* w, const float* g_hat, const float* scale,
                            int64_t n, int64_t channels, float* g_w, void* stream) {
  check_quantize_args(q, kernel_bits_for(q, kMinDorefaBits), n, channels);
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t per = n / channels;
  const bool vec = per % 4 == 0 && aligned16(w) && aligned16(g_hat) && aligned16(g_w);
  const bool dorefa = q == Quantizer::dorefa;
  for (int64_t c0 = 0; c0 < channels; c0 += kMaxGridY) {
    const int64_t chunk = std::min(kMaxGridY, channels - c0), off = c0 * per;
    const dim3 grid = slice_grid(per, chunk, vec);
    const float *wc = w + off, *gc = g_hat + off, *sc = scale + c0;
    float* oc = g_w + off;
    if (dorefa && vec) backward_kernel<true, true><<<grid, kThreads, 0, s>>>(wc, gc, sc, per, oc);
    if (dorefa && !vec) backward_kernel<true, false><<<grid, kThreads, 0, s>>>(wc, gc, sc, per, oc);
    if (!dorefa && vec) backward_kernel<false, true><<<grid, kThreads, 0, s>>>(wc, gc, sc, per, oc);
    if (!dorefa && !vec) backward_kernel<false, false><<<grid, kThreads, 0, s>>>(wc, gc, sc, per, oc);
  }
  MQ_CHECK_LAUNCH("quantize backward_kernel", s);
}

void quantize_calibration_cuda(Quantizer q, const float* w, int64_t n, int64_t channels,
                               float* c, void* workspace, void* stream) {
  check_quantize_args(q, kernel_bits_for(q, kMinDorefaBits), n, channels);
  auto s = static_cast<cudaStream_t>(stream);
  if (q != Quantizer::dorefa) {
    fill_kernel<<<slice_grid(n, 1, false), kThreads, 0, s>>>(c, n, 1.f);
    MQ_CHECK_LAUNCH("fill_kernel", s);
    return;
  }
  auto* max_bits = static_cast<unsigned*>(workspace);
  if (n % 4 == 0 && aligned16(w) && aligned16(c)) {
    launch_dorefa_max<true>(w, n, max_bits, s);
    calibration_kernel<true><<<slice_grid(n, 1, true), kThreads, 0, s>>>(w, n, max_bits, c);
  } else {
    launch_dorefa_max<false>(w, n, max_bits, s);
    calibration_kernel<false><<<slice_grid(n, 1, false), kThreads, 0, s>>>(w, n, max_bits, c);
  }
  MQ_CHECK_LAUNCH("calibration_kernel", s);
}

}  // namespace mq::kernels
