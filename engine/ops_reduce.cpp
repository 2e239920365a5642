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
  on_device(
      a, name,
      [&](auto tag) {
        using T = decltype(tag);
        *out.data<T>() = kernels::sum_cpu<T>(a.data<T>(), a.numel());
      },
      [&](auto stream) {
        kernels::sum_cuda(a.data<float>(), a.numel(), out.data<float>(), stream);
      });
  return out;
}

// Gradient of a full reduction: `scale * g` everywhere, g a 0-dim tensor on the same device.
Tensor broadcast_grad(const Tensor& g, const Shape& shape, double scale) {
  Tensor out = Tensor::empty(shape, g.dtype(), g.device());
  on_device(
      g, "reduction_backward", [&](auto) { out.fill_(g.item() * scale); },
      [&](auto stream) {
        kernels::broadcast_scalar_cuda(g.data<float>(), float(scale), out.data<float>(),
                                       out.numel(), stream);
      });
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
  on_device(
      a, name,
      [&](auto tag) {
        using T = decltype(tag);
        *out.data<T>() = kernels::max_abs_cpu<T>(a.data<T>(), a.numel());
      },
      [&](auto stream) {
        kernels::max_abs_cuda(a.data<float>(), a.numel(), out.data<float>(), stream);
      });
  Tensor x = a.detach(), m = out.detach();
  return record(out, name, {a}, [x, m](const Tensor& g) {
    Tensor gi = Tensor::empty(x.shape(), x.dtype(), x.device());
    on_device(
        x, "max_abs_backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::max_abs_backward_cpu<T>(x.data<T>(), x.numel(), *m.data<T>(), *g.data<T>(),
                                           gi.data<T>());
        },
        [&](auto stream) {
          kernels::max_abs_backward_cuda(x.data<float>(), x.numel(), m.data<float>(),
                                         g.data<float>(), gi.data<float>(), stream);
        });
    return std::vector<Tensor>{gi};
  });
}

}  // namespace mq
