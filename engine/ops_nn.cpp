// Global average pool, batch norm, cross-entropy and accuracy: validation, dispatch to
// engine/cpu or engine/cuda, and the backward next to each forward.
#include "engine/cpu/batch_norm_relu.h"
#include "engine/ops_nn_common.h"

namespace mq {
using nn_detail::check_operand;
using nn_detail::empty_like;

Tensor global_avg_pool(const Tensor& x) {
  const char* op = "global_avg_pool";
  check_operand(x, x, 4, op, "x");
  MQ_CHECK(x.size(2) > 0 && x.size(3) > 0, "global_avg_pool: empty spatial size in {}",
           x.describe());
  Tensor y = Tensor::empty({x.size(0), x.size(1)}, x.dtype(), x.device());
  on_device(x, op,
      [&](auto) { cpu::global_avg_pool_forward(x, y); },
      [&](auto) { cuda_ops::global_avg_pool_forward(x, y); });
  Shape shape = x.shape();
  return record(y, op, {x}, [shape](const Tensor& gy) {
    Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device());
    on_device(gy, "global_avg_pool_backward",
        [&](auto) { cpu::global_avg_pool_backward(gy, gx); },
        [&](auto) { cuda_ops::global_avg_pool_backward(gy, gx); });
    return std::vector<Tensor>{gx};
  });
}

Tensor max_pool2d(const Tensor& x, MaxPool2dParams p) {
  const char* op = "max_pool2d";
  check_operand(x, x, 4, op, "x");
  MQ_CHECK(p.kernel >= 1 && p.stride >= 1 && p.padding >= 0 && p.padding <= p.kernel / 2,
           "max_pool2d: need kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2, got kernel "
           "{} stride {} padding {}", p.kernel, p.stride, p.padding);
  const int64_t h = x.size(2), w = x.size(3);
  MQ_CHECK(h + 2 * p.padding >= p.kernel && w + 2 * p.padding >= p.kernel,
           "max_pool2d: the {}x{} window does not fit the padded input {} (padding {})", p.kernel,
           p.kernel, x.describe(), p.padding);
  const int64_t out_h = (h + 2 * p.padding - p.kernel) / p.stride + 1;
  const int64_t out_w = (w + 2 * p.padding - p.kernel) / p.stride + 1;
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  Tensor indices = Tensor::empty(y.shape(), DType::i64, x.device());
  on_device(x, op,
      [&](auto) { cpu::max_pool2d_forward(x, y, indices, p); },
      [&](auto) { cuda_ops::max_pool2d_forward(x, y, indices, p); });
  Shape shape = x.shape();
  return record(y, op, {x}, [shape, indices, p](const Tensor& gy) {
    Tensor gx = Tensor::empty(shape, gy.dtype(), gy.device());
    on_device(gy, "max_pool2d_backward",
        [&](auto) { cpu::max_pool2d_backward(gy, indices, gx, p); },
        [&](auto) { cuda_ops::max_pool2d_backward(gy, indices, gx, p); });
    return std::vector<Tensor>{gx};
  });
}

void nn_detail::check_batch_norm_params(const Tensor& x, int64_t c, const Tensor& weight,
                                        const Tensor& bias, const Tensor& running_mean,
                                        const Tensor& running_var, const char* op) {
  auto check_channel_vector = [&](const Tensor& t, const char* arg) {
    check_operand(t, x, 1, op, arg);
    MQ_CHECK(t.size(0) == c, "{}: {} {} must have {} elements (the channels of {})", op, arg,
             t.describe(), c, x.describe());
  };
  if (weight.defined()) check_channel_vector(weight, "weight");
  if (bias.defined()) check_channel_vector(bias, "bias");
  MQ_CHECK(running_mean.defined() && running_var.defined(),
           "{}: running_mean and running_var are required", op);
  check_channel_vector(running_mean, "running_mean");
  check_channel_vector(running_var, "running_var");
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  Tensor& running_mean, Tensor& running_var, BatchNormParams p) {
  const char* op = "batch_norm";
  check_operand(x, x, -1, op, "x");
  MQ_CHECK(x.dim() == 2 || x.dim() == 4, "batch_norm: x must be [N, C] or [N, C, H, W], got {}",
           x.describe());
  const int64_t c = x.size(1);
  nn_detail::check_batch_norm_params(x, c, weight, bias, running_mean, running_var, op);
  MQ_CHECK(p.eps > 0 && p.momentum >= 0 && p.momentum <= 1,
           "batch_norm: need eps > 0 and momentum in [0, 1], got eps {} momentum {}", p.eps,
           p.momentum);
  const int64_t per_channel = x.numel() / std::max<int64_t>(c, 1);
  Tensor y = empty_like(x);
  Tensor xs = x.detach(), ws = weight.defined() ? weight.detach() : Tensor();
  const bool gx_needed = x.requires_grad();
  const bool gw_needed = weight.defined() && weight.requires_grad();
  const bool gb_needed = bias.defined() && bias.requires_grad();
  auto grads = [=](const Tensor& g, Tensor& gx, Tensor& gw, Tensor& gb) {
    if (gx_needed) gx = empty_like(xs);
    if (gw_needed) gw = empty_like(ws);
    if (gb_needed) gb = Tensor::empty({c}, g.dtype(), g.device());
  };

  if (p.training) {
    // As PyTorch: the unbiased variance of one value per channel is undefined.
    MQ_CHECK(per_channel > 1,
             "batch_norm: training needs more than 1 value per channel, got x {} (use eval mode "
             "or a larger batch)",
             x.describe());
    Tensor save_mean = Tensor::empty({c}, x.dtype(), x.device());
    Tensor save_invstd = Tensor::empty({c}, x.dtype(), x.device());
    on_device(x, op,
        [&](auto) { cpu::batch_norm_forward_train(x, weight, bias, running_mean, running_var, p.momentum, p.eps, y, save_mean, save_invstd); },
        [&](auto) { cuda_ops::batch_norm_forward_train(x, weight, bias, running_mean, running_var, p.momentum, p.eps, y, save_mean, save_invstd); });
    return record(y, op, {x, weight, bias}, [=](const Tensor& g) {
      Tensor gx, gw, gb;
      grads(g, gx, gw, gb);
      on_device(g, "batch_norm_backward",
          [&](auto) { cpu::batch_norm_backward_train(g, xs, ws, save_mean, save_invstd, gx, gw, gb); },
          [&](auto) { cuda_ops::batch_norm_backward_train(g, xs, ws, save_mean, save_invstd, gx, gw, gb); });
      return std::vector<Tensor>{gx, gw, gb};
    });
  }

  on_device(x, op,
      [&](auto) { cpu::batch_norm_forward_eval(x, weight, bias, running_mean, running_var, p.eps, y); },
      [&](auto) { cuda_ops::batch_norm_forward_eval(x, weight, bias, running_mean, running_var, p.eps, y); });
  if (!needs_grad({x, weight, bias})) return y;
  // Snapshot the statistics: a later training-mode forward may update them before backward.
  Tensor rm = running_mean.clone(), rv = running_var.clone();
  const double eps = p.eps;
  return record(y, op, {x, weight, bias}, [=](const Tensor& g) {
    Tensor gx, gw, gb;
    grads(g, gx, gw, gb);
    on_device(g, "batch_norm_backward",
        [&](auto) { cpu::batch_norm_backward_eval(g, xs, ws, rm, rv, eps, gx, gw, gb); },
        [&](auto) { cuda_ops::batch_norm_backward_eval(g, xs, ws, rm, rv, eps, gx, gw, gb); });
    return std::vector<Tensor>{gx, gw, gb};
  });
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       Tensor& running_mean, Tensor& running_var, BatchNormParams p,
                       const Tensor& residual) {
  const char* op = "batch_norm_relu";
  check_operand(x, x, -1, op, "x");
  if (residual.defined()) {
    check_same_device(residual, x, op);
    check_same_dtype(residual, x, op);
    MQ_CHECK(residual.shape() == x.shape(), "{}: residual {} must have x's shape {}", op,
             residual.describe(), shape_str(x.shape()));
  }
  const bool fused = p.training && x.is_cpu() && x.dim() == 4 && x.size(2) * x.size(3) > 1 &&
                     (x.dtype() == DType::f32 || x.dtype() == DType::f64);
  if (!fused) {
    Tensor y = batch_norm(x, weight, bias, running_mean, running_var, p);
    return relu(residual.defined() ? add(y, residual) : y);
  }
  const int64_t c = x.size(1);
  nn_detail::check_batch_norm_params(x, c, weight, bias, running_mean, running_var, op);
  MQ_CHECK(p.eps > 0 && p.momentum >= 0 && p.momentum <= 1,
           "{}: need eps > 0 and momentum in [0, 1], got eps {} momentum {}", op, p.eps,
           p.momentum);
  Tensor y = empty_like(x);
  Tensor save_mean = Tensor::empty({c}, x.dtype(), x.device());
  Tensor save_invstd = Tensor::empty({c}, x.dtype(), x.device());
  cpu::batch_norm_relu_forward_train(x, weight, bias, running_mean, running_var, p.momentum,
                                     p.eps, residual, y, save_mean, save_invstd);
  Tensor xs = x.detach();
  Tensor ws = weight.defined() ? weight.detach() : Tensor();
  Tensor bs = bias.defined() ? bias.detach() : Tensor();
  Tensor rs = residual.defined() ? residual.detach() : Tensor();
  const bool gx_needed = x.requires_grad();
  const bool gw_needed = weight.defined() && weight.requires_grad();
  const bool gb_needed = bias.defined() && bias.requires_grad();
  const bool gr_needed = residual.defined() && residual.requires_grad();
  return record(y, op, {x, weight, bias, residual}, [=](const Tensor& g) {
    Tensor gx, gw, gb, gr;
    if (gx_needed) gx = empty_like(xs);
    if (gw_needed) gw = empty_like(ws);
    if (gb_needed) gb = Tensor::empty({c}, g.dtype(), g.device());
    if (rs.defined()) gr = empty_like(rs);  // the ReLU's gradient: the pass below reads it too
    cpu::batch_norm_relu_backward_train(g, xs, ws, bs, rs, save_mean, save_invstd, gx, gw, gb,
                                        gr);
    return std::vector<Tensor>{gx, gw, gb, gr_needed ? gr : Tensor()};
  });
}

namespace {
void check_labels(const Tensor& logits, const Tensor& labels, const char* op) {
  check_operand(logits, logits, 2, op, "logits");
  check_defined(labels, op, "labels");
  MQ_CHECK(labels.dtype() == DType::i64 || labels.dtype() == DType::i32,
           "{}: labels must be i64 or i32, got {}", op, labels.describe());
  check_dim(labels, 1, op, "labels");
  check_same_device(logits, labels, op);
  MQ_CHECK(labels.size(0) == logits.size(0),
           "{}: {} labels for {} rows of logits {} (logits are [N, classes], labels [N])", op,
           labels.size(0), logits.size(0), logits.describe());
  MQ_CHECK(logits.size(0) > 0 && logits.size(1) > 0, "{}: empty logits {}", op,
           logits.describe());
  // Range check on the host (a copy of N integers for CUDA labels) so a bad label is a clear
  // error instead of an out-of-bounds read.
  const Tensor host = labels.is_cpu() ? labels : labels.to(Device::cpu());
  const int64_t classes = logits.size(1);
  for (int64_t i = 0; i < host.numel(); ++i) {
    const int64_t y = host.dtype() == DType::i64 ? host.data<int64_t>()[i]
                                                 : int64_t(host.data<int32_t>()[i]);
    MQ_CHECK(y >= 0 && y < classes,
             "{}: label {} at index {} is outside [0, {}) for logits {}; check the data set's "
             "class count",
             op, y, i, classes, logits.describe());
  }
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  const char* op = "cross_entropy";
  check_labels(logits, labels, op);
  Tensor loss = Tensor::empty({}, logits.dtype(), logits.device());
  Tensor probs = empty_like(logits);
  on_device(logits, op,
      [&](auto) { cpu::cross_entropy_forward(logits, labels, loss, probs); },
      [&](auto) { cuda_ops::cross_entropy_forward(logits, labels, loss, probs); });
  Tensor ls = labels.detach();
  return record(loss, op, {logits}, [probs, ls](const Tensor& g) {
    Tensor gl = empty_like(probs);
    on_device(g, "cross_entropy_backward",
        [&](auto) { cpu::cross_entropy_backward(probs, ls, g, gl); },
        [&](auto) { cuda_ops::cross_entropy_backward(probs, ls, g, gl); });
    return std::vector<Tensor>{gl};
  });
}

int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const char* op = "count_correct";
  check_labels(logits, labels, op);
  return on_device(logits, op, [&](auto) { return cpu::count_correct(logits, labels); },
                   [&](auto) { return cuda_ops::count_correct(logits, labels); });
}

}  // namespace mq
