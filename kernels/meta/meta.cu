// CUDA kernels of the meta networks (see meta.h); the math is in meta_math.h.
// Reductions are deterministic: a fixed block partition writes per-block partials (double) to
// the workspace and one more kernel sums them in block order.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/meta/meta.h"

namespace mq::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = kMetaCudaMaxBlocks;

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }


int64_t reduce_blocks(int64_t n, int64_t rows_per_block) {
  return std::max<int64_t>(1, std::min<int64_t>(kMaxBlocks, (n + rows_per_block - 1) / rows_per_block));
}

__global__ void scaled_forward(const float* s, const float* u, const float* v, int64_t n,
                               float* G) {
  const float sv = s[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    G[i] = meta_scaled_value(sv, u[i], v ? v[i] : 1.0f);
}

__global__ void scaled_backward_partial(const float* dG, const float* u, const float* v,
                                        int64_t n, double* part) {
  __shared__ double sh[kThreads];
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    acc += double(dG[i]) * double(u[i]) * (v ? double(v[i]) : 1.0);
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

// out[q] += sum_b part[b * width + q]
__global__ void sum_partials(const double* part, int64_t blocks, int64_t width, float* out0,
                             int64_t w0, float* out1, int64_t w1, float* out2, int64_t w2,
                             float* out3) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < width;
       q += int64_t(gridDim.x) * blockDim.x) {
    double t = 0;
    for (int64_t b = 0; b < blocks; ++b) t += part[b * width + q];
    float* dst = q < w0 ? out0 + q
                 : q < w0 + w1 ? out1 + (q - w0)
                 : q < w0 + w1 + w2 ? out2 + (q - w0 - w1)
                                    : out3 + (q - w0 - w1 - w2);
    *dst += static_cast<float>(t);
  }
}

// One warp per row: lanes stride over the hidden units, shuffle-reduce fc1.
__global__ void lstm_forward(LstmParams<float> p, const float* x, const float* g_hat,
                             const float* r, const float* c_prev, int64_t n, float* h_new,
                             float* c_new, float* G) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const int64_t h = p.hidden;
  for (int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32; row < n;
       row += warps) {
    const float xi = x[row];
    float m = 0;
    for (int64_t j = lane; j < h; j += 32) {
      float a[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t q = k * h + j;
        a[k] = xi * p.w_ih[q] + p.b_ih[q] + (r ? r[row * 4 * h + q] : 0.0f) + p.b_hh[q];
      }
      LstmGates<float> s = lstm_gates(a[0], a[1], a[2], a[3], c_prev ? c_prev[row * h + j] : 0.0f);
      h_new[row * h + j] = s.h;
      c_new[row * h + j] = s.c;
      m += p.fc_w[j] * s.h;
    }
    for (int off = 16; off > 0; off >>= 1) m += __shfl_down_sync(0xffffffffu, m, off);
    if (lane == 0) G[row] = g_hat[row] * (m + p.fc_b[0]);
  }
}

// Threads over hidden units, each block a fixed contiguous range of rows; per-block partials
// of (w_ih 4h | b 4h | fc_w h | fc_b 1).
__global__ void lstm_backward_partial(LstmParams<float> p, const float* dG, const float* x,
                                      const float* g_hat, const float* r, const float* c_prev,
                                      int64_t n, int64_t rows_per_block, float* da,
                                      double* part) {
  const int64_t h = p.hidden, width = 9 * h + 1;
  const int64_t r0 = blockIdx.x * rows_per_block, r1 = r0 + rows_per_block < n ? r0 + rows_per_block : n;
  double* out = part + blockIdx.x * width;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    double acc_w[4] = {0, 0, 0, 0}, acc_b[4] = {0, 0, 0, 0}, acc_fc = 0;
    for (int64_t row = r0; row < r1; ++row) {
      const float xi = x[row], gm = dG[row] * g_hat[row];
      float a[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t q = k * h + j;
        a[k] = xi * p.w_ih[q] + p.b_ih[q] + (r ? r[row * 4 * h + q] : 0.0f) + p.b_hh[q];
      }
      const float c0 = c_prev ? c_prev[row * h + j] : 0.0f;
      LstmGates<float> s = lstm_gates(a[0], a[1], a[2], a[3], c0);
      acc_fc += double(gm * s.h);
      float d[4];
      lstm_gates_backward(s, c0, gm * p.fc_w[j], d[0], d[1], d[2], d[3]);
      for (int k = 0; k < 4; ++k) {
        acc_w[k] += double(d[k] * xi);
        acc_b[k] += double(d[k]);
        if (da) da[row * 4 * h + k * h + j] = d[k];
      }
    }
    for (int k = 0; k < 4; ++k) {
      out[k * h + j] = acc_w[k];
      out[4 * h + k * h + j] = acc_b[k];
    }
    out[8 * h + j] = acc_fc;
  }
  if (threadIdx.x == 0) {
    double acc = 0;
    for (int64_t row = r0; row < r1; ++row) acc += double(dG[row] * g_hat[row]);
    out[9 * h] = acc;
  }
}

}  // namespace

void meta_scaled_forward_cuda(const float* s, const float* u, const float* v, int64_t n, float* G,
                              void* stream) {
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(65535, (n + kThreads - 1) / kThreads));
  scaled_forward<<<blocks, kThreads, 0, as_stream(stream)>>>(s, u, v, n, G);
  MQ_CHECK_LAUNCH("meta_scaled_forward", stream);
}

void meta_scaled_backward_cuda(const float* dG, const float* u, const float* v, int64_t n,
                               float* ds, void* workspace, void* stream) {
  const int64_t blocks = reduce_blocks(n, kThreads * 4);
  double* part = static_cast<double*>(workspace);
  scaled_backward_partial<<<blocks, kThreads, 0, as_stream(stream)>>>(dG, u, v, n, part);
  MQ_CHECK_LAUNCH("meta_scaled_backward", stream);
  sum_partials<<<1, 32, 0, as_stream(stream)>>>(part, blocks, 1, ds, 1, nullptr, 0, nullptr, 0,
                                                nullptr);
  MQ_CHECK_LAUNCH("meta_scaled_backward (sum)", stream);
}

void meta_lstm_forward_cuda(const LstmParams<float>& p, const float* x, const float* g_hat,
                            const float* r, const float* c_prev, int64_t n, float* h_new,
                            float* c_new, float* G, void* stream) {
  const int64_t rows_per_block = kThreads / 32;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(65535, (n + rows_per_block - 1) / rows_per_block));
  lstm_forward<<<blocks, kThreads, 0, as_stream(stream)>>>(p, x, g_hat, r, c_prev, n, h_new,
                                                           c_new, G);
  MQ_CHECK_LAUNCH("meta_lstm_forward", stream);
}

void meta_lstm_backward_cuda(const LstmParams<float>& p, const float* dG, const float* x,
                             const float* g_hat, const float* r, const float* c_prev, int64_t n,
                             float* da, const LstmGrads<float>& grads, void* workspace,
                             void* stream) {
  const int64_t h = p.hidden, rpb = meta_lstm_cuda_rows_per_block(n);
  const int64_t blocks = (n + rpb - 1) / rpb;
  const int threads = static_cast<int>(std::min<int64_t>(256, ((h + 31) / 32) * 32));
  double* part = static_cast<double*>(workspace);
  lstm_backward_partial<<<blocks, threads, 0, as_stream(stream)>>>(p, dG, x, g_hat, r, c_prev, n,
                                                                   rpb, da, part);
  MQ_CHECK_LAUNCH("meta_lstm_backward", stream);
  const int64_t width = 9 * h + 1;
  sum_partials<<<(width + 255) / 256, 256, 0, as_stream(stream)>>>(
      part, blocks, width, grads.w_ih, 4 * h, grads.b, 4 * h, grads.fc_w, h, grads.fc_b);
  MQ_CHECK_LAUNCH("meta_lstm_backward (sum)", stream);
}

}  // namespace mq::kernels
