// conv2d: forward and backward (input and weight), dispatched to engine/cpu or engine/cuda.
#include "engine/ops_nn_common.h"

namespace mq {
using nn_detail::check_operand;

Tensor conv2d(const Tensor& x, const Tensor& weight, Conv2dParams p) {
  const char* op = "conv2d";
  check_operand(x, x, 4, op, "x");
  check_operand(weight, x, 4, op, "weight");
  MQ_CHECK(p.stride >= 1 && p.padding >= 0,
           "conv2d: stride must be >= 1 and padding >= 0, got stride {} padding {}", p.stride,
           p.padding);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t k = weight.size(0), r = weight.size(2), s = weight.size(3);
  MQ_CHECK(weight.size(1) == c,
           "conv2d: weight {} expects {} input channels but x {} has {} (weight is [K, C, R, S], "
           "x is [N, C, H, W])",
           weight.describe(), weight.size(1), x.describe(), c);
  MQ_CHECK(k > 0 && r > 0 && s > 0 && n > 0 && c > 0, "conv2d: empty x {} or weight {}",
           x.describe(), weight.describe());
  MQ_CHECK(h + 2 * p.padding >= r && w + 2 * p.padding >= s,
           "conv2d: kernel {}x{} is larger than the padded input {}x{} (x {}, padding {})", r, s,
           h + 2 * p.padding, w + 2 * p.padding, x.describe(), p.padding);
  const int64_t oh = (h + 2 * p.padding - r) / p.stride + 1;
  const int64_t ow = (w + 2 * p.padding - s) / p.stride + 1;
  Tensor y = Tensor::empty({n, k, oh, ow}, x.dtype(), x.device());
  MQ_BACKEND_CALL(x, op, conv2d_forward(x, weight, y, p));

  Tensor xs = x.detach(), ws = weight.detach();
  const bool gx_needed = x.requires_grad(), gw_needed = weight.requires_grad();
  return record(y, op, {x, weight}, [xs, ws, p, gx_needed, gw_needed](const Tensor& gy) {
    Tensor gx, gw;
    if (gx_needed) {
      gx = nn_detail::empty_like(xs);
      MQ_BACKEND_CALL(gy, "conv2d_backward", conv2d_backward_input(gy, ws, gx, p));
    }
    if (gw_needed) {
      gw = nn_detail::empty_like(ws);
      MQ_BACKEND_CALL(gy, "conv2d_backward", conv2d_backward_weight(gy, xs, gw, p));
    }
    return std::vector<Tensor>{gx, gw};
  });
}

}  // namespace mq
