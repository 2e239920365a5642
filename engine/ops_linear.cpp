// matmul and linear: forward and backward on the backend GEMM.
#include "engine/ops_nn_common.h"

namespace mq {
using nn_detail::check_operand;

Tensor matmul(const Tensor& a, const Tensor& b) {
  const char* op = "matmul";
  check_operand(a, a, 2, op, "a");
  check_operand(b, a, 2, op, "b");
  MQ_CHECK(a.size(1) == b.size(0), "matmul: inner dimensions differ: a {} @ b {}", a.describe(),
           b.describe());
  Tensor c = Tensor::empty({a.size(0), b.size(1)}, a.dtype(), a.device());
  on_device(a, op,
      [&](auto) { cpu::gemm(a, false, b, false, c, 0.0); },
      [&](auto) { cuda_ops::gemm(a, false, b, false, c, 0.0); });

  Tensor as = a.detach(), bs = b.detach();
  const bool ga_needed = a.requires_grad(), gb_needed = b.requires_grad();
  return record(c, op, {a, b}, [as, bs, ga_needed, gb_needed](const Tensor& g) {
    Tensor ga, gb;
    if (ga_needed) {  // g @ b^T
      ga = nn_detail::empty_like(as);
      on_device(g, "matmul_backward",
          [&](auto) { cpu::gemm(g, false, bs, true, ga, 0.0); },
          [&](auto) { cuda_ops::gemm(g, false, bs, true, ga, 0.0); });
    }
    if (gb_needed) {  // a^T @ g
      gb = nn_detail::empty_like(bs);
      on_device(g, "matmul_backward",
          [&](auto) { cpu::gemm(as, true, g, false, gb, 0.0); },
          [&](auto) { cuda_ops::gemm(as, true, g, false, gb, 0.0); });
    }
    return std::vector<Tensor>{ga, gb};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  check_operand(x, x, 2, op, "x");
  check_operand(weight, x, 2, op, "weight");
  MQ_CHECK(weight.size(1) == x.size(1),
           "linear: weight {} takes {} input features but x {} has {} (weight is [out, in])",
           weight.describe(), weight.size(1), x.describe(), x.size(1));
  if (bias.defined()) {
    check_operand(bias, x, 1, op, "bias");
    MQ_CHECK(bias.size(0) == weight.size(0), "linear: bias {} must have {} elements (weight {})",
             bias.describe(), weight.size(0), weight.describe());
  }
  Tensor y = Tensor::empty({x.size(0), weight.size(0)}, x.dtype(), x.device());
  on_device(x, op,
      [&](auto) { cpu::gemm(x, false, weight, true, y, 0.0); },
      [&](auto) { cuda_ops::gemm(x, false, weight, true, y, 0.0); });
  if (bias.defined()) {
    on_device(x, op, [&](auto) { cpu::add_channel_bias(y, bias); },
              [&](auto) { cuda_ops::add_channel_bias(y, bias); });
  }

  Tensor xs = x.detach(), ws = weight.detach();
  const bool gx_needed = x.requires_grad(), gw_needed = weight.requires_grad();
  const bool gb_needed = bias.defined() && bias.requires_grad();
  const int64_t out = weight.size(0);
  return record(y, op, {x, weight, bias},
                [xs, ws, gx_needed, gw_needed, gb_needed, out](const Tensor& g) {
                  Tensor gx, gw, gb;
                  if (gx_needed) {  // g @ W
                    gx = nn_detail::empty_like(xs);
                    on_device(g, "linear_backward",
                        [&](auto) { cpu::gemm(g, false, ws, false, gx, 0.0); },
                        [&](auto) { cuda_ops::gemm(g, false, ws, false, gx, 0.0); });
                  }
                  if (gw_needed) {  // g^T @ x
                    gw = nn_detail::empty_like(ws);
                    on_device(g, "linear_backward",
                        [&](auto) { cpu::gemm(g, true, xs, false, gw, 0.0); },
                        [&](auto) { cuda_ops::gemm(g, true, xs, false, gw, 0.0); });
                  }
                  if (gb_needed) {
                    gb = Tensor::empty({out}, g.dtype(), g.device());
                    on_device(g, "linear_backward",
                        [&](auto) { cpu::sum_channels(g, gb); },
                        [&](auto) { cuda_ops::sum_channels(g, gb); });
                  }
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

}  // namespace mq
