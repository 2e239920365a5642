// CUDA max pooling: one thread per output (forward) and one per input element (backward, a
// gather in output order, so the sums are deterministic and equal the CPU's scatter).
#include "kernels/cuda_launch.h"
#include "kernels/nn/nn_cuda.h"
#include "kernels/nn/pool_math.h"

namespace mq::kernels {
namespace {
constexpr int kPoolThreads = 256;

__global__ void max_pool_forward_kernel(const float* x, float* y, int64_t* indices,
                                        int64_t planes, PoolGeometry g) {
  const int64_t per = g.p * g.q, n = planes * per;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t plane = i / per, o = i % per;
    pool_window_max(x + plane * g.h * g.w, g, o / g.q, o % g.q, &y[i], &indices[i]);
  }
}

__global__ void max_pool_backward_kernel(const float* gy, const int64_t* indices, float* gx,
                                         int64_t planes, PoolGeometry g) {
  const int64_t per = g.h * g.w, n = planes * per;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t plane = i / per, e = i % per, ih = e / g.w, iw = e % g.w;
    int64_t p0, p1, q0, q1;
    pool_outputs_covering(ih, g.kernel, g.stride, g.padding, g.p, &p0, &p1);
    pool_outputs_covering(iw, g.kernel, g.stride, g.padding, g.q, &q0, &q1);
    const int64_t base = plane * g.p * g.q;
    float acc = 0;
    for (int64_t pi = p0; pi < p1; ++pi)
      for (int64_t qi = q0; qi < q1; ++qi)
        if (indices[base + pi * g.q + qi] == e) acc += gy[base + pi * g.q + qi];
    gx[i] = acc;
  }
}

}  // namespace

void max_pool2d_forward_cuda(const float* x, float* y, int64_t* indices, int64_t planes,
                             const PoolGeometry& g, void* stream) {
  const int64_t n = planes * g.p * g.q;
  if (n == 0) return;
  max_pool_forward_kernel<<<grid_for(n, kPoolThreads), kPoolThreads, 0,
                            static_cast<cudaStream_t>(stream)>>>(x, y, indices, planes, g);
  MQ_CHECK_LAUNCH("max_pool2d_forward", stream);
}

void max_pool2d_backward_cuda(const float* gy, const int64_t* indices, float* gx, int64_t planes,
                              const PoolGeometry& g, void* stream) {
  const int64_t n = planes * g.h * g.w;
  if (n == 0) return;
  max_pool_backward_kernel<<<grid_for(n, kPoolThreads), kPoolThreads, 0,
                             static_cast<cudaStream_t>(stream)>>>(gy, indices, gx, planes, g);
  MQ_CHECK_LAUNCH("max_pool2d_backward", stream);
}

}  // namespace mq::kernels
