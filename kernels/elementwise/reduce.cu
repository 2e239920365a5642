// CUDA full reductions. One kernel per reduction: every block reduces a fixed grid-stride slice
// (in double) to a partial; the last block to finish sums the partials in index order, so the
// result is deterministic run to run. Partials live in per-device __device__ globals, safe
// because all of a device's work is serialized on its one stream.
#include <cstdint>

#include "kernels/cuda_launch.h"
#include "kernels/elementwise/reduce.h"

namespace mq::kernels {
namespace {
constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

__device__ double g_partials[kMaxBlocks];
__device__ unsigned int g_blocks_done = 0;
__device__ double g_result;  // for reductions consumed by a later kernel (max_abs ties)

struct SumOp {
  __device__ double load(float x) const { return x; }
  __device__ double combine(double a, double b) const { return a + b; }
};
struct MaxAbsOp {
  __device__ double load(float x) const { return fabs(static_cast<double>(x)); }
  __device__ double combine(double a, double b) const { return a > b ? a : b; }
};
// Counts x[i] with |x[i]| == *max_value.
struct TiesOp {
  const float* max_value;
  __device__ double load(float x) const { return fabsf(x) == *max_value ? 1.0 : 0.0; }
  __device__ double combine(double a, double b) const { return a + b; }
};

template <class Op>
__device__ double block_reduce(double v, Op op) {
  __shared__ double warp_vals[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) v = op.combine(v, __shfl_down_sync(0xffffffffu, v, off));
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_vals[lane] : 0.0;
    for (int off = 16; off > 0; off /= 2)
      v = op.combine(v, __shfl_down_sync(0xffffffffu, v, off));
  }
  __syncthreads();  // warp_vals may be reused by the caller's next block_reduce
  return v;  // valid in thread 0
}

// `out` may be null: then the result goes to g_result.
template <class Op>
__global__ void reduce_kernel(const float* x, int64_t n, Op op, float* out) {
  double acc = 0.0;  // identity of sum and of max over |x| >= 0
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    acc = op.combine(acc, op.load(x[i]));
  acc = block_reduce(acc, op);
  __shared__ bool last;
  if (threadIdx.x == 0) {
    g_partials[blockIdx.x] = acc;
    __threadfence();  // publish the partial before counting this block done
    unsigned done = atomicAdd(&g_blocks_done, 1u);
    last = done == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  double total = 0.0;
  for (int i = threadIdx.x; i < static_cast<int>(gridDim.x); i += blockDim.x)
    total = op.combine(total, *(volatile double*)&g_partials[i]);
  total = block_reduce(total, op);
  if (threadIdx.x == 0) {
    if (out)
      *out = static_cast<float>(total);
    else
      g_result = total;
    g_blocks_done = 0;  // ready for the next reduction on this device
  }
}

template <class Op>
void launch_reduce(const char* name, const float* x, int64_t n, Op op, float* out,
                   void* stream) {
  unsigned grid = grid_for(n, kThreads * 4, kMaxBlocks);  // >= 4 elements per thread
  reduce_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, op, out);
  MQ_CHECK_LAUNCH(name, stream);
}

__global__ void max_abs_backward_kernel(const float* x, int64_t n, const float* max_value,
                                        const float* grad_out, float* grad_in) {
  float m = *max_value;
  float ties = static_cast<float>(g_result);
  float share = ties > 0.0f ? *grad_out / ties : 0.0f;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float v = x[i];
    grad_in[i] = fabsf(v) == m ? share * static_cast<float>((v > 0.0f) - (v < 0.0f)) : 0.0f;
  }
}

__global__ void broadcast_kernel(const float* value, float scale, float* y, int64_t n) {
  float v = scale * *value;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = v;
}
}  // namespace

void sum_cuda(const float* x, int64_t n, float* out, void* stream) {
  launch_reduce("sum", x, n, SumOp{}, out, stream);
}

void max_abs_cuda(const float* x, int64_t n, float* out, void* stream) {
  launch_reduce("max_abs", x, n, MaxAbsOp{}, out, stream);
}

void max_abs_backward_cuda(const float* x, int64_t n, const float* max_value,
                           const float* grad_out, float* grad_in, void* stream) {
  if (n <= 0) return;
  launch_reduce("max_abs_backward ties", x, n, TiesOp{max_value}, nullptr, stream);
  max_abs_backward_kernel<<<grid_for(n, kThreads), kThreads, 0,
                            static_cast<cudaStream_t>(stream)>>>(x, n, max_value, grad_out,
                                                                 grad_in);
  MQ_CHECK_LAUNCH("max_abs_backward", stream);
}

void broadcast_scalar_cuda(const float* value, float scale, float* y, int64_t n, void* stream) {
  if (n <= 0) return;
  broadcast_kernel<<<grid_for(n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      value, scale, y, n);
  MQ_CHECK_LAUNCH("broadcast_scalar", stream);
}

}  // namespace mq::kernels
