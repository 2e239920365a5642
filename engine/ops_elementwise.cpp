// Elementwise ops: forward and backward side by side, kernels in kernels/elementwise.
#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "kernels/elementwise/elementwise.h"

namespace mq {
namespace {
using kernels::BinaryOp;
using kernels::UnaryOp;

Tensor unary(UnaryOp op, const Tensor& a, const char* name) {
  check_defined(a, name, "a");
  check_floating(a, name, "a");
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  on_device(
      a, name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::unary_cpu<T>(op, a.data<T>(), y.data<T>(), a.numel());
      },
      [&](auto stream) {
        kernels::unary_cuda(op, a.data<float>(), y.data<float>(), a.numel(), stream);
      });
  return y;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  check_floating(a, name, "a");
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  check_same_shape(a, b, name);
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  on_device(
      a, name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::binary_cpu<T>(op, a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
      },
      [&](auto stream) {
        kernels::binary_cuda(op, a.data<float>(), b.data<float>(), y.data<float>(), a.numel(),
                             stream);
      });
  return y;
}

Tensor affine(const Tensor& a, double alpha, double beta, const char* name) {
  check_defined(a, name, "a");
  check_floating(a, name, "a");
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  on_device(
      a, name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::affine_cpu<T>(a.data<T>(), y.data<T>(), a.numel(), T(alpha), T(beta));
      },
      [&](auto stream) {
        kernels::affine_cuda(a.data<float>(), y.data<float>(), a.numel(), float(alpha),
                             float(beta), stream);
      });
  return y;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return record(binary(BinaryOp::add, a, b, "add"), "add", {a, b},
                [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record(binary(BinaryOp::sub, a, b, "sub"), "sub", {a, b},
                [](const Tensor& g) { return std::vector<Tensor>{g, neg(g)}; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor sa = a.detach(), sb = b.detach();
  bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(binary(BinaryOp::mul, a, b, "mul"), "mul", {a, b},
                [sa, sb, ga, gb](const Tensor& g) {
                  return std::vector<Tensor>{ga ? mul(g, sb) : Tensor(),
                                             gb ? mul(g, sa) : Tensor()};
                });
}

Tensor add_scalar(const Tensor& a, double s) {
  return record(affine(a, 1.0, s, "add_scalar"), "add_scalar", {a},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul_scalar(const Tensor& a, double s) {
  return record(affine(a, s, 0.0, "mul_scalar"), "mul_scalar", {a},
                [s](const Tensor& g) { return std::vector<Tensor>{mul_scalar(g, s)}; });
}

Tensor neg(const Tensor& a) {
  return record(unary(UnaryOp::neg, a, "neg"), "neg", {a},
                [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

// The backward keeps the output, not the input (y > 0 exactly where x > 0, NaN included): the
// input, typically a batch norm's output, is then freed at once, one activation fewer per
// conv-BN-ReLU held for the backward.
Tensor relu(const Tensor& a) {
  Tensor y = unary(UnaryOp::relu, a, "relu");
  Tensor saved = y.detach();
  return record(y, "relu", {a}, [saved](const Tensor& g) {
    return std::vector<Tensor>{binary(BinaryOp::relu_grad, g, saved, "relu_backward")};
  });
}

Tensor hardtanh(const Tensor& a, double lo, double hi) {
  const char* op = "hardtanh";
  check_defined(a, op, "a");
  check_floating(a, op, "a");
  MQ_CHECK(lo <= hi, "hardtanh: need lo <= hi, got lo {} hi {}", lo, hi);
  Tensor y = Tensor::empty(a.shape(), a.dtype(), a.device());
  on_device(
      a, op,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::hardtanh_cpu<T>(a.data<T>(), y.data<T>(), a.numel(), T(lo), T(hi));
      },
      [&](auto stream) {
        kernels::hardtanh_cuda(a.data<float>(), y.data<float>(), a.numel(), float(lo), float(hi),
                               stream);
      });
  // The input, not the output: at a bound the output cannot tell x == hi from x > hi.
  Tensor x = a.detach();
  return record(y, op, {a}, [x, lo, hi](const Tensor& g) {
    check_same_shape(g, x, "hardtanh_backward");
    Tensor gx = Tensor::empty(x.shape(), g.dtype(), g.device());
    on_device(
        g, "hardtanh_backward",
        [&](auto tag) {
          using T = decltype(tag);
          kernels::hardtanh_grad_cpu<T>(g.data<T>(), x.data<T>(), gx.data<T>(), x.numel(), T(lo),
                                        T(hi));
        },
        [&](auto stream) {
          kernels::hardtanh_grad_cuda(g.data<float>(), x.data<float>(), gx.data<float>(),
                                      x.numel(), float(lo), float(hi), stream);
        });
    return std::vector<Tensor>{gx};
  });
}

Tensor relu6(const Tensor& a) { return hardtanh(a, 0.0, 6.0); }

Tensor tanh(const Tensor& a) {
  Tensor y = unary(UnaryOp::tanh, a, "tanh");
  Tensor saved = y.detach();
  return record(y, "tanh", {a}, [saved](const Tensor& g) {
    return std::vector<Tensor>{binary(BinaryOp::tanh_grad, g, saved, "tanh_backward")};
  });
}

Tensor abs(const Tensor& a) {
  Tensor x = a.detach();
  return record(unary(UnaryOp::abs, a, "abs"), "abs", {a}, [x](const Tensor& g) {
    return std::vector<Tensor>{binary(BinaryOp::abs_grad, g, x, "abs_backward")};
  });
}

Tensor sign(const Tensor& a) {
  // Piecewise constant: zero gradient almost everywhere (as PyTorch).
  return record(unary(UnaryOp::sign, a, "sign"), "sign", {a}, [](const Tensor& g) {
    return std::vector<Tensor>{Tensor::zeros(g.shape(), g.dtype(), g.device())};
  });
}

Tensor stop_gradient(const Tensor& a) { return a.detach(); }

void add_inplace(Tensor& dst, const Tensor& src) { axpy_inplace(dst, 1.0, src); }

void axpy_inplace(Tensor& dst, double alpha, const Tensor& src) {
  const char* name = "axpy_inplace";
  check_defined(dst, name, "dst");
  check_defined(src, name, "src");
  check_floating(dst, name, "dst");
  check_same_device(dst, src, name);
  check_same_dtype(dst, src, name);
  check_same_shape(dst, src, name);
  on_device(
      dst, name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::axpy_cpu<T>(T(alpha), src.data<T>(), dst.data<T>(), dst.numel());
      },
      [&](auto stream) {
        kernels::axpy_cuda(float(alpha), src.data<float>(), dst.data<float>(), dst.numel(),
                           stream);
      });
}

}  // namespace mq
