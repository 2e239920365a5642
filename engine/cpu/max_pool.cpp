// CPU max pooling (f32 and f64): the window scan of kernels/nn/pool_math.h, shared with CUDA.
#include <algorithm>

#include "engine/backend.h"
#include "engine/dispatch.h"
#include "kernels/cpu_threads.h"
#include "kernels/nn/pool_math.h"

namespace mq::cpu {
namespace {

kernels::PoolGeometry geometry(const Tensor& x, const Tensor& y, MaxPool2dParams p) {
  return {x.size(2), x.size(3), y.size(2), y.size(3), p.kernel, p.stride, p.padding};
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, MaxPool2dParams p) {
  dispatch_floating(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const kernels::PoolGeometry g = geometry(x, y, p);
    const int64_t planes = x.size(0) * x.size(1), per_out = g.p * g.q;
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int64_t* pi = indices.data<int64_t>();
    // planes handed out as threads come free (a slower thread takes fewer)
#pragma omp parallel for schedule(dynamic, 4) if (x.numel() > kernels::kCpuParallelMin)
    for (int64_t c = 0; c < planes; ++c)
      for (int64_t i = 0; i < g.p; ++i)
        for (int64_t j = 0; j < g.q; ++j) {
          const int64_t o = c * per_out + i * g.q + j;
          kernels::pool_window_max(px + c * g.h * g.w, g, i, j, py + o, pi + o);
        }
  });
}

void max_pool2d_backward(const Tensor& gy, const Tensor& indices, Tensor& gx, MaxPool2dParams p) {
  dispatch_floating(gy.dtype(), "max_pool2d_backward", [&](auto tag) {
    using T = decltype(tag);
    const kernels::PoolGeometry g = geometry(gx, gy, p);
    const int64_t planes = gx.size(0) * gx.size(1), per_out = g.p * g.q, per_in = g.h * g.w;
    const T* pg = gy.data<T>();
    const int64_t* pi = indices.data<int64_t>();
    T* px = gx.data<T>();
    // Scatter in output order, one plane per task: each element's sum runs in output order,
    // as the CUDA gather's does.
#pragma omp parallel for schedule(dynamic, 4) if (gx.numel() > kernels::kCpuParallelMin)
    for (int64_t c = 0; c < planes; ++c) {
      T* plane = px + c * per_in;
      std::fill(plane, plane + per_in, T(0));
      for (int64_t o = 0; o < per_out; ++o) plane[pi[c * per_out + o]] += pg[c * per_out + o];
    }
  });
}

}  // namespace mq::cpu
