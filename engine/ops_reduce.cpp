// Full reductions (sum, mean, max|x|) and their backward, kernels in kernels/elementwise.
#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/elementwise/reduce.h"

namespace mq {
namespace {

Tensor reduce_sum(const Tensor& a, const char* name) {
  check_defined(a, name, "a");
  check_floating(a, name, "a");
  Tensor out = Tensor::empty({}, a.dtype(), a.device());
  if (a.is_cuda()) {
    check_cuda_f32(a, name);
    MQ_CUDA_CALL(kernels::sum_cuda(static_cast<const float*>(a.raw_data()), a.numel(),
                                   static_cast<float*>(out.raw_data()), stream_of(a)));
  } else {
    dispatch_floating(a.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      *out.data<T>() = kernels::sum_cpu<T>(a.data<T>(), a.numel());
    });
  }
  return out;
}

// Gradient of a full reduction: `scale * g` everywhere, g a 0-dim tensor on the same device.
Tensor broadcast_grad(const Tensor& g, const Shape& shape, double scale) {
  Tensor out = Tensor::empty(shape, g.dtype(), g.device());
  if (g.is_cuda()) {
    MQ_CUDA_CALL(kernels::broadcast_scalar_cuda(static_cast<const float*>(g.raw_data()),
                                                float(scale), static_cast<float*>(out.raw_data()),
                                                out.numel(), stream_of(g)));
  } else {
    out.fill_(g.item() * scale);
  }
  return out;
}
}  // namespace

Tensor sum(const Tensor& a) {
  Shape shape = a.shape();
  return record(reduce_sum(a, "sum"), "sum", {a}, [shape](const Tensor& g) {
    return std::vector<Tensor>{broadcast_grad(g, shape, 1.0)};
  });
}

Tensor mean(const Tensor& a) {
  MQ_CHECK(a.numel() > 0, "mean of an empty tensor {}", a.describe());
  Shape shape = a.shape();
  double inv = 1.0 / static_cast<double>(a.numel());
  Tensor s = reduce_sum(a, "mean");
  Tensor out = mul_scalar(s, inv);  // s has no history: plain scaling
  return record(out, "mean", {a}, [shape, inv](const Tensor& g) {
    return std::vector<Tensor>{broadcast_grad(g, shape, inv)};
  });
}

Tensor max_abs(const Tensor& a) {
  const char* name = "max_abs";
  check_defined(a, name, "a");
  check_floating(a, name, "a");
  MQ_CHECK(a.numel() > 0, "max_abs of an empty tensor {}", a.describe());
  Tensor out = Tensor::empty({}, a.dtype(), a.device());
  if (a.is_cuda()) {
    check_cuda_f32(a, name);
    MQ_CUDA_CALL(kernels::max_abs_cuda(static_cast<const float*>(a.raw_data()), a.numel(),
                                       static_cast<float*>(out.raw_data()), stream_of(a)));
  } else {
    dispatch_floating(a.dtype(), name, [&](auto tag) {
      using T = decltype(tag);
      *out.data<T>() = kernels::max_abs_cpu<T>(a.data<T>(), a.numel());
    });
  }
  Tensor x = a.detach(), m = out.detach();
  return record(out, name, {a}, [x, m](const Tensor& g) {
    Tensor gi = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (x.is_cuda()) {
      MQ_CUDA_CALL(kernels::max_abs_backward_cuda(
          static_cast<const float*>(x.raw_data()), x.numel(),
          static_cast<const float*>(m.raw_data()), static_cast<const float*>(g.raw_data()),
          static_cast<float*>(gi.raw_data()), stream_of(x)));
    } else {
      dispatch_floating(x.dtype(), "max_abs_backward", [&](auto tag) {
        using T = decltype(tag);
        kernels::max_abs_backward_cpu<T>(x.data<T>(), x.numel(), *m.data<T>(), *g.data<T>(),
                                         gi.data<T>());
      });
    }
    return std::vector<Tensor>{gi};
  });
}

}  // namespace mq
