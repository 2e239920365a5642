// CUDA kernels for bias, global average pooling, batch norm, cross-entropy and accuracy.
// Reductions accumulate in double and combine partials in a fixed order (deterministic).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda_launch.h"
#include "kernels/nn/nn_cuda.h"

namespace mq::kernels {
namespace {
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

#define MQ_GRID_STRIDE(i, n)                                                                 \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);     \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ double warp_sum(double v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ float warp_max(float v) {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over a block of kThreads threads; the result is valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warp_vals[kWarps];
  v = warp_sum(v);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) v = warp_sum(lane < kWarps ? warp_vals[lane] : 0.0);
  __syncthreads();  // warp_vals is reused by the next call
  return v;
}

// ---- bias ----
__global__ void add_channel_bias_kernel(float* y, const float* bias, int64_t total, int64_t c,
                                        int64_t plane) {
  MQ_GRID_STRIDE(i, total) y[i] += bias[(i / plane) % c];
}

__global__ void sum_channels_kernel(const float* g, float* out, int64_t n, int64_t c,
                                    int64_t plane) {
  MQ_GRID_STRIDE(k, c) {
    double acc = 0.0;  // plane 1: consecutive threads read consecutive columns, coalesced
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < plane; ++j) acc += g[(i * c + k) * plane + j];
    out[k] = static_cast<float>(acc);
  }
}

// ---- global average pool ----
__global__ void gap_forward_kernel(const float* x, float* y, int64_t planes, int64_t hw) {
  int64_t plane = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (plane >= planes) return;  // the whole warp leaves together
  const float* p = x + plane * hw;
  float acc = 0.0f;
  for (int64_t j = lane; j < hw; j += 32) acc += p[j];
  acc = warp_sum(acc);
  if (lane == 0) y[plane] = acc / static_cast<float>(hw);
}

__global__ void gap_backward_kernel(const float* gy, float* gx, int64_t total, int64_t hw) {
  float inv = 1.0f / static_cast<float>(hw);
  MQ_GRID_STRIDE(i, total) gx[i] = gy[i / hw] * inv;
}

// ---- batch norm ----
int64_t bn_splits(int64_t n, int64_t c) {
  // Enough (split, channel) blocks to fill the GPU even with few channels.
  int64_t s = (1024 + c - 1) / std::max<int64_t>(c, 1);
  return std::clamp<int64_t>(s, 1, std::max<int64_t>(n, 1));
}

struct BnScratch {
  double* part;    // [2][c][splits]
  float* mean1;    // [c] per-channel mean of gy (backward)
  float* mean2;    // [c] per-channel mean of gy * xhat (backward)
  float* invstd;   // [c] 1/sqrt(running_var + eps) (eval backward)
};
BnScratch bn_scratch(void* ws, int64_t c, int64_t splits) {
  auto* part = static_cast<double*>(ws);
  auto* f = reinterpret_cast<float*>(part + 2 * c * splits);
  return {part, f, f + c, f + 2 * c};
}

// Partial sums per (split, channel) block. kGrad = false: sum x, sum x^2.
// kGrad = true: sum gy, sum gy * (x - mean) * invstd.
template <bool kGrad>
__global__ void bn_partial_kernel(const float* x, const float* gy, const float* mean,
                                  const float* invstd, int64_t n, int64_t c, int64_t hw,
                                  int64_t splits, double* part) {
  int64_t s = blockIdx.x, ch = blockIdx.y;
  int64_t n0 = s * n / splits, n1 = (s + 1) * n / splits;
  int64_t count = (n1 - n0) * hw;
  float m = kGrad ? mean[ch] : 0.0f, is = kGrad ? invstd[ch] : 0.0f;
  double a1 = 0.0, a2 = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    int64_t idx = ((n0 + i / hw) * c + ch) * hw + i % hw;
    float v = x[idx];
    if (kGrad) {
      float g = gy[idx];
      a1 += g;
      a2 += static_cast<double>(g) * ((v - m) * is);
    } else {
      a1 += v;
      a2 += static_cast<double>(v) * v;
    }
  }
  a1 = block_sum(a1);
  a2 = block_sum(a2);
  if (threadIdx.x == 0) {
    part[ch * splits + s] = a1;
    part[(c + ch) * splits + s] = a2;
  }
}

__global__ void bn_forward_finalize_kernel(const double* part, int64_t c, int64_t splits,
                                           int64_t count, float momentum, float eps,
                                           float* save_mean, float* save_invstd,
                                           float* running_mean, float* running_var) {
  MQ_GRID_STRIDE(ch, c) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t k = 0; k < splits; ++k) {
      s1 += part[ch * splits + k];
      s2 += part[(c + ch) * splits + k];
    }
    double mean = s1 / count;
    double var = fmax(s2 / count - mean * mean, 0.0);  // biased: used to normalize
    save_mean[ch] = static_cast<float>(mean);
    save_invstd[ch] = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
    if (running_mean)
      running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
    if (running_var) {
      double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_var[ch] =
          static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
  }
}

__global__ void bn_normalize_kernel(const float* x, const float* mean, const float* invstd,
                                    const float* weight, const float* bias, float* y,
                                    int64_t total, int64_t c, int64_t hw) {
  MQ_GRID_STRIDE(i, total) {
    int64_t ch = (i / hw) % c;
    float v = (x[i] - mean[ch]) * invstd[ch];
    if (weight) v *= weight[ch];
    if (bias) v += bias[ch];
    y[i] = v;
  }
}

__global__ void bn_eval_forward_kernel(const float* x, const float* rm, const float* rv,
                                       float eps, const float* weight, const float* bias,
                                       float* y, int64_t total, int64_t c, int64_t hw) {
  MQ_GRID_STRIDE(i, total) {
    int64_t ch = (i / hw) % c;
    float v = (x[i] - rm[ch]) * (1.0f / sqrtf(rv[ch] + eps));
    if (weight) v *= weight[ch];
    if (bias) v += bias[ch];
    y[i] = v;
  }
}

__global__ void bn_invstd_kernel(const float* rv, float eps, float* invstd, int64_t c) {
  MQ_GRID_STRIDE(ch, c) invstd[ch] = 1.0f / sqrtf(rv[ch] + eps);
}

// gb = sum gy, gw = sum gy * xhat; also the per-element means used by the gx kernel.
__global__ void bn_backward_finalize_kernel(const double* part, int64_t c, int64_t splits,
                                            int64_t count, float* gw, float* gb, float* mean1,
                                            float* mean2) {
  MQ_GRID_STRIDE(ch, c) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t k = 0; k < splits; ++k) {
      s1 += part[ch * splits + k];
      s2 += part[(c + ch) * splits + k];
    }
    if (gb) gb[ch] = static_cast<float>(s1);
    if (gw) gw[ch] = static_cast<float>(s2);
    mean1[ch] = static_cast<float>(s1 / count);
    mean2[ch] = static_cast<float>(s2 / count);
  }
}

// Training: gx = w * invstd * (gy - mean(gy) - xhat * mean(gy * xhat)).
__global__ void bn_backward_input_kernel(const float* gy, const float* x, const float* weight,
                                         const float* mean, const float* invstd,
                                         const float* mean1, const float* mean2, float* gx,
                                         int64_t total, int64_t c, int64_t hw) {
  MQ_GRID_STRIDE(i, total) {
    int64_t ch = (i / hw) % c;
    float is = invstd[ch];
    float xhat = (x[i] - mean[ch]) * is;
    float scale = weight ? weight[ch] * is : is;
    gx[i] = scale * (gy[i] - mean1[ch] - xhat * mean2[ch]);
  }
}

// Eval: the statistics are constants, gx = gy * w * invstd.
__global__ void bn_eval_backward_input_kernel(const float* gy, const float* weight,
                                              const float* invstd, float* gx, int64_t total,
                                              int64_t c, int64_t hw) {
  MQ_GRID_STRIDE(i, total) {
    int64_t ch = (i / hw) % c;
    gx[i] = gy[i] * (weight ? weight[ch] * invstd[ch] : invstd[ch]);
  }
}

// ---- cross-entropy: one warp per row ----
template <class L>
__global__ void ce_forward_rows_kernel(const float* logits, const L* labels, float* probs,
                                       float* row_losses, int64_t n, int64_t c) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= n) return;
  const float* x = logits + row * c;
  float m = -INFINITY;
  for (int64_t j = lane; j < c; j += 32) m = fmaxf(m, x[j]);
  m = warp_max(m);
  float s = 0.0f;
  for (int64_t j = lane; j < c; j += 32) s += expf(x[j] - m);
  s = warp_sum(s);
  float inv = 1.0f / s;
  float* p = probs + row * c;
  for (int64_t j = lane; j < c; j += 32) p[j] = expf(x[j] - m) * inv;
  if (lane == 0) {
    int64_t label = static_cast<int64_t>(labels[row]);
    row_losses[row] = label >= 0 && label < c ? logf(s) + m - x[label] : NAN;
  }
}

__global__ void mean_kernel(const float* v, int64_t n, float* out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = n > 0 ? static_cast<float>(acc / n) : NAN;
}

template <class L>
__global__ void ce_backward_kernel(const float* probs, const L* labels, const float* gloss,
                                   float* glogits, int64_t n, int64_t c) {
  float scale = *gloss / static_cast<float>(n);
  MQ_GRID_STRIDE(i, n * c) {
    int64_t row = i / c, j = i % c;
    float onehot = static_cast<int64_t>(labels[row]) == j ? 1.0f : 0.0f;
    glogits[i] = (probs[i] - onehot) * scale;
  }
}

// First index of the row maximum (ties -> smallest index), compared with the label.
template <class L>
__global__ void count_correct_kernel(const float* logits, const L* labels, int64_t n, int64_t c,
                                     unsigned long long* count) {
  int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= n) return;
  const float* x = logits + row * c;
  float best = -INFINITY;
  int64_t best_i = c;
  if (lane < c) {
    best = x[lane];
    best_i = lane;
  }
  for (int64_t j = lane + 32; j < c; j += 32)
    if (x[j] > best) {
      best = x[j];
      best_i = j;
    }
  for (int off = 16; off > 0; off /= 2) {
    float ov = __shfl_xor_sync(0xffffffffu, best, off);
    int64_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  if (lane == 0 && best_i == static_cast<int64_t>(labels[row])) atomicAdd(count, 1ull);
}

dim3 bn_grid(int64_t splits, int64_t c) {
  return dim3(static_cast<unsigned>(splits), static_cast<unsigned>(c));
}

unsigned rows_grid(int64_t rows) { return grid_for(rows, kWarps, int64_t{1} << 30); }
}  // namespace

void add_channel_bias_cuda(float* y, const float* bias, int64_t n, int64_t c, int64_t plane,
                           void* stream) {
  if (n * c * plane == 0) return;
  add_channel_bias_kernel<<<grid_for(n * c * plane, kThreads), kThreads, 0, as_stream(stream)>>>(
      y, bias, n * c * plane, c, plane);
  MQ_CHECK_LAUNCH("add_channel_bias", stream);
}

void sum_channels_cuda(const float* g, float* out, int64_t n, int64_t c, int64_t plane,
                       void* stream) {
  if (c == 0) return;
  sum_channels_kernel<<<grid_for(c, kThreads), kThreads, 0, as_stream(stream)>>>(g, out, n, c,
                                                                                 plane);
  MQ_CHECK_LAUNCH("sum_channels", stream);
}

void global_avg_pool_forward_cuda(const float* x, float* y, int64_t planes, int64_t hw,
                                  void* stream) {
  if (planes == 0) return;
  gap_forward_kernel<<<rows_grid(planes), kThreads, 0, as_stream(stream)>>>(x, y, planes, hw);
  MQ_CHECK_LAUNCH("global_avg_pool_forward", stream);
}

void global_avg_pool_backward_cuda(const float* gy, float* gx, int64_t planes, int64_t hw,
                                   void* stream) {
  if (planes * hw == 0) return;
  gap_backward_kernel<<<grid_for(planes * hw, kThreads), kThreads, 0, as_stream(stream)>>>(
      gy, gx, planes * hw, hw);
  MQ_CHECK_LAUNCH("global_avg_pool_backward", stream);
}

size_t bn_workspace_bytes(int64_t n, int64_t c) {
  return static_cast<size_t>(2 * c * bn_splits(n, c)) * sizeof(double) +
         static_cast<size_t>(3 * c) * sizeof(float);
}

void bn_forward_train_cuda(const float* x, const float* weight, const float* bias,
                           float* running_mean, float* running_var, float momentum, float eps,
                           float* y, float* save_mean, float* save_invstd, int64_t n, int64_t c,
                           int64_t hw, void* workspace, void* stream) {
  if (c == 0) return;
  int64_t splits = bn_splits(n, c);
  BnScratch sc = bn_scratch(workspace, c, splits);
  cudaStream_t st = as_stream(stream);
  bn_partial_kernel<false><<<bn_grid(splits, c), kThreads, 0, st>>>(x, nullptr, nullptr, nullptr,
                                                                 n, c, hw, splits, sc.part);
  MQ_CHECK_LAUNCH("batch_norm stats", stream);
  bn_forward_finalize_kernel<<<grid_for(c, kThreads), kThreads, 0, st>>>(
      sc.part, c, splits, n * hw, momentum, eps, save_mean, save_invstd, running_mean,
      running_var);
  MQ_CHECK_LAUNCH("batch_norm finalize", stream);
  if (n * hw == 0) return;
  bn_normalize_kernel<<<grid_for(n * c * hw, kThreads), kThreads, 0, st>>>(
      x, save_mean, save_invstd, weight, bias, y, n * c * hw, c, hw);
  MQ_CHECK_LAUNCH("batch_norm normalize", stream);
}

void bn_forward_eval_cuda(const float* x, const float* weight, const float* bias,
                          const float* running_mean, const float* running_var, float eps,
                          float* y, int64_t n, int64_t c, int64_t hw, void* stream) {
  int64_t total = n * c * hw;
  if (total == 0) return;
  bn_eval_forward_kernel<<<grid_for(total, kThreads), kThreads, 0, as_stream(stream)>>>(
      x, running_mean, running_var, eps, weight, bias, y, total, c, hw);
  MQ_CHECK_LAUNCH("batch_norm eval forward", stream);
}

void bn_backward_train_cuda(const float* gy, const float* x, const float* weight,
                            const float* save_mean, const float* save_invstd, float* gx,
                            float* gw, float* gb, int64_t n, int64_t c, int64_t hw,
                            void* workspace, void* stream) {
  if (c == 0) return;
  int64_t splits = bn_splits(n, c);
  BnScratch sc = bn_scratch(workspace, c, splits);
  cudaStream_t st = as_stream(stream);
  bn_partial_kernel<true><<<bn_grid(splits, c), kThreads, 0, st>>>(x, gy, save_mean, save_invstd,
                                                                n, c, hw, splits, sc.part);
  MQ_CHECK_LAUNCH("batch_norm backward stats", stream);
  bn_backward_finalize_kernel<<<grid_for(c, kThreads), kThreads, 0, st>>>(
      sc.part, c, splits, std::max<int64_t>(n * hw, 1), gw, gb, sc.mean1, sc.mean2);
  MQ_CHECK_LAUNCH("batch_norm backward finalize", stream);
  if (!gx || n * hw == 0) return;
  bn_backward_input_kernel<<<grid_for(n * c * hw, kThreads), kThreads, 0, st>>>(
      gy, x, weight, save_mean, save_invstd, sc.mean1, sc.mean2, gx, n * c * hw, c, hw);
  MQ_CHECK_LAUNCH("batch_norm backward input", stream);
}

void bn_backward_eval_cuda(const float* gy, const float* x, const float* weight,
                           const float* running_mean, const float* running_var, float eps,
                           float* gx, float* gw, float* gb, int64_t n, int64_t c, int64_t hw,
                           void* workspace, void* stream) {
  if (c == 0) return;
  int64_t splits = bn_splits(n, c);
  BnScratch sc = bn_scratch(workspace, c, splits);
  cudaStream_t st = as_stream(stream);
  bn_invstd_kernel<<<grid_for(c, kThreads), kThreads, 0, st>>>(running_var, eps, sc.invstd, c);
  MQ_CHECK_LAUNCH("batch_norm eval invstd", stream);
  if (gw || gb) {
    bn_partial_kernel<true><<<bn_grid(splits, c), kThreads, 0, st>>>(
        x, gy, running_mean, sc.invstd, n, c, hw, splits, sc.part);
    MQ_CHECK_LAUNCH("batch_norm eval backward stats", stream);
    bn_backward_finalize_kernel<<<grid_for(c, kThreads), kThreads, 0, st>>>(
        sc.part, c, splits, std::max<int64_t>(n * hw, 1), gw, gb, sc.mean1, sc.mean2);
    MQ_CHECK_LAUNCH("batch_norm eval backward finalize", stream);
  }
  if (!gx || n * hw == 0) return;
  bn_eval_backward_input_kernel<<<grid_for(n * c * hw, kThreads), kThreads, 0, st>>>(
      gy, weight, sc.invstd, gx, n * c * hw, c, hw);
  MQ_CHECK_LAUNCH("batch_norm eval backward input", stream);
}

void cross_entropy_forward_cuda(const float* logits, const void* labels, bool labels_i64,
                                float* loss, float* probs, float* row_losses, int64_t n,
                                int64_t c, void* stream) {
  cudaStream_t st = as_stream(stream);
  if (n > 0) {
    if (labels_i64)
      ce_forward_rows_kernel<<<rows_grid(n), kThreads, 0, st>>>(
          logits, static_cast<const int64_t*>(labels), probs, row_losses, n, c);
    else
      ce_forward_rows_kernel<<<rows_grid(n), kThreads, 0, st>>>(
          logits, static_cast<const int32_t*>(labels), probs, row_losses, n, c);
    MQ_CHECK_LAUNCH("cross_entropy forward", stream);
  }
  mean_kernel<<<1, kThreads, 0, st>>>(row_losses, n, loss);
  MQ_CHECK_LAUNCH("cross_entropy mean", stream);
}

void cross_entropy_backward_cuda(const float* probs, const void* labels, bool labels_i64,
                                 const float* gloss, float* glogits, int64_t n, int64_t c,
                                 void* stream) {
  if (n * c == 0) return;
  unsigned grid = grid_for(n * c, kThreads);
  if (labels_i64)
    ce_backward_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(
        probs, static_cast<const int64_t*>(labels), gloss, glogits, n, c);
  else
    ce_backward_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(
        probs, static_cast<const int32_t*>(labels), gloss, glogits, n, c);
  MQ_CHECK_LAUNCH("cross_entropy backward", stream);
}

void count_correct_cuda(const float* logits, const void* labels, bool labels_i64, int64_t n,
                        int64_t c, unsigned long long* count, void* stream) {
  cudaStream_t st = as_stream(stream);
  cudaMemsetAsync(count, 0, sizeof *count, st);
  if (n == 0 || c == 0) return;
  if (labels_i64)
    count_correct_kernel<<<rows_grid(n), kThreads, 0, st>>>(
        logits, static_cast<const int64_t*>(labels), n, c, count);
  else
    count_correct_kernel<<<rows_grid(n), kThreads, 0, st>>>(
        logits, static_cast<const int32_t*>(labels), n, c, count);
  MQ_CHECK_LAUNCH("count_correct", stream);
}

}  // namespace mq::kernels
