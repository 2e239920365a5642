// conv2d: forward and backward (input and weight), dispatched to engine/cpu or engine/cuda.
#include "engine/ops_nn_common.h"

namespace mq {
using nn_detail::check_operand;

Tensor nn_detail::conv2d_output(const Tensor& x, const Tensor& weight, Conv2dParams p,
                                const char* op) {
  check_operand(x, x, 4, op, "x");
  check_operand(weight, x, 4, op, "weight");
  MQ_CHECK(p.stride >= 1 && p.padding >= 0 && p.groups >= 1,
           "{}: stride and groups must be >= 1 and padding >= 0, got stride {} padding {} "
           "groups {}", op, p.stride, p.padding, p.groups);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t k = weight.size(0), r = weight.size(2), s = weight.size(3);
  MQ_CHECK(c % p.groups == 0 && k % p.groups == 0,
           "{}: groups {} must divide the input channels of x {} and the output channels of "
           "weight {}", op, p.groups, x.describe(), weight.describe());
  MQ_CHECK(weight.size(1) * p.groups == c,
           "{}: weight {} expects {} input channels per group but x {} has {} channels in {} "
           "group(s) (weight is [K, C / groups, R, S], x is [N, C, H, W])",
           op, weight.describe(), weight.size(1), x.describe(), c, p.groups);
  MQ_CHECK(k > 0 && r > 0 && s > 0 && n > 0 && c > 0, "{}: empty x {} or weight {}", op,
           x.describe(), weight.describe());
  MQ_CHECK(h + 2 * p.padding >= r && w + 2 * p.padding >= s,
           "{}: kernel {}x{} is larger than the padded input {}x{} (x {}, padding {})", op, r, s,
           h + 2 * p.padding, w + 2 * p.padding, x.describe(), p.padding);
  const int64_t oh = (h + 2 * p.padding - r) / p.stride + 1;
  const int64_t ow = (w + 2 * p.padding - s) / p.stride + 1;
  return Tensor::empty({n, k, oh, ow}, x.dtype(), x.device());
}

Tensor conv2d(const Tensor& x, const Tensor& weight, Conv2dParams p) {
  return conv2d(x, weight, Tensor(), p);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dParams p) {
  const char* op = "conv2d";
  Tensor y = nn_detail::conv2d_output(x, weight, p, op);
  if (bias.defined()) {
    check_operand(bias, x, 1, op, "bias");
    MQ_CHECK(bias.size(0) == weight.size(0), "conv2d: bias {} must have {} elements (weight {})",
             bias.describe(), weight.size(0), weight.describe());
  }
  on_device(x, op,
      [&](auto) { cpu::conv2d_forward(x, weight, y, p); },
      [&](auto) { cuda_ops::conv2d_forward(x, weight, y, p); });
  if (bias.defined()) {
    on_device(x, op, [&](auto) { cpu::add_channel_bias(y, bias); },
              [&](auto) { cuda_ops::add_channel_bias(y, bias); });
  }

  Tensor xs = x.detach(), ws = weight.detach();
  const bool gx_needed = x.requires_grad(), gw_needed = weight.requires_grad();
  const bool gb_needed = bias.defined() && bias.requires_grad();
  return record(y, op, {x, weight, bias},
                [xs, ws, p, gx_needed, gw_needed, gb_needed](const Tensor& gy) {
    Tensor gx, gw, gb;
    if (gx_needed) {
      gx = nn_detail::empty_like(xs);
      on_device(gy, "conv2d_backward",
          [&](auto) { cpu::conv2d_backward_input(gy, ws, gx, p); },
          [&](auto) { cuda_ops::conv2d_backward_input(gy, ws, gx, p); });
    }
    if (gw_needed) {
      gw = nn_detail::empty_like(ws);
      on_device(gy, "conv2d_backward",
          [&](auto) { cpu::conv2d_backward_weight(gy, xs, gw, p); },
          [&](auto) { cuda_ops::conv2d_backward_weight(gy, xs, gw, p); });
    }
    if (gb_needed) {
      gb = Tensor::empty({ws.size(0)}, gy.dtype(), gy.device());
      on_device(gy, "conv2d_backward",
          [&](auto) { cpu::sum_channels(gy, gb); },
          [&](auto) { cuda_ops::sum_channels(gy, gb); });
    }
    return std::vector<Tensor>{gx, gw, gb};
  });
}

}  // namespace mq
