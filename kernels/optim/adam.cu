#include "kernels/cuda_launch.h"
#include "kernels/optim/adam.h"

namespace mq::kernels {
namespace {
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, float* out, int64_t n,
                            optim::AdamScalars<float> s, bool refine_only) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float gi = g[i], mi = m[i], vi = v[i];
    optim::adam_moments(gi, p[i], mi, vi, s);
    m[i] = mi;
    v[i] = vi;
    if (refine_only)
      out[i] = optim::adam_refined(mi, vi, s);
    else
      p[i] = optim::adam_step(p[i], mi, vi, s);
  }
}
}  // namespace

void adam_cuda(float* p, const float* g, float* m, float* v, float* out, int64_t n,
               const optim::AdamScalars<float>& s, bool refine_only, void* stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  adam_kernel<<<grid_for(n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p, g, m, v, out, n, s,
                                                                         refine_only);
  MQ_CHECK_LAUNCH("adam_kernel", stream);
}

}  // namespace mq::kernels
