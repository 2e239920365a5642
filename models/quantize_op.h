#pragma once
// The weight-quantization op of docs/metaquant.md §3, with its STE backward, and the
// calibration c. Self-contained: QConv2d/QLinear call quantize() on each forward.
//
//   QuantizeResult r = quantize(W, {Quantizer::dorefa, 2});
//   r.w_hat   W^ = Q(A(W)): carries autograd history back to W through the STE rule, i.e.
//             g_W = g_W^ * (1 - tanh^2 W) / m            (dorefa, m = max|tanh W|)
//             g_W = alpha * g_W^ * [|W| <= 1]             (bwn; bwn-f with its channel's alpha)
//             g_W = a * g_W^ * [|W| <= 1]                 (ternary)
//             The backward reads W's storage: do not modify W in place before backward().
//   r.w_tilde W~ = A(W), WITHOUT history (a stop-gradient value: the meta networks' input,
//             docs/metaquant.md §4). For bwn, bwn-f and ternary W~ = W, and w_tilde shares W's
//             storage (w_tilde_is_w = true; clone() it if W will be changed in place while W~ is
//             still needed). For dorefa it is a fresh tensor.
//   r.scale   [channels], no history: dorefa m, bwn/bwn-f alpha = mean|W| (per output channel for
//             bwn-f), ternary a.
//   calibration(W, spec): dorefa (1 - tanh^2 W) / max|tanh W| from this W, else ones; no history.
//
// Devices: CPU in f32 and f64, CUDA in f32. bwn-f takes dim 0 as the output channel for any
// weight (a conv's [K, C, R, S], a linear's [out, in]); docs/metaquant.md §3.3 applies it to
// convs only, so QLinear should quantize with per_tensor(spec).
#include <string>

#include "engine/tensor.h"
#include "kernels/quantize/quantize_math.h"

namespace mq {

using kernels::Quantizer;

struct QuantSpec {
  Quantizer kind = Quantizer::dorefa;
  // Within the quantizer's accepted bits (kernels/quantize/quantizer_table.h, validated); only
  // dorefa depends on it: bwn and bwn-f are binary and ternary is ternary whatever it says (as
  // the reference ignores -bw for BWN).
  int bits = 1;
};

// A quantizer's name or alias in the table (case-insensitive); mq::Error listing the choices
// otherwise.
Quantizer parse_quantizer(const std::string& text);
std::string quantizer_str(Quantizer q);  // the canonical spelling above
// "dorefa-2bit", "bwn", "bwn-f", "ternary"
std::string spec_str(QuantSpec spec);
// Throws mq::Error unless bits is within the quantizer's accepted bits.
void validate(QuantSpec spec);
// bwn-f becomes bwn (for layers without output channels in the sense of docs/metaquant.md §3.3).
QuantSpec per_tensor(QuantSpec spec);
// The bits the kernels run with (the table's kernel_bits: spec.bits for dorefa, 1 for
// bwn/bwn-f, 2 for ternary).
int kernel_bits(QuantSpec spec);

struct QuantizeResult {
  Tensor w_tilde;
  Tensor w_hat;
  Tensor scale;
  bool w_tilde_is_w = false;
};

QuantizeResult quantize(const Tensor& W, QuantSpec spec);
Tensor calibration(const Tensor& W, QuantSpec spec);

// The STE backward alone (what W^'s history runs): g_W from W, g_W^ and the forward's scale.
Tensor quantize_backward(const Tensor& W, const Tensor& g_hat, const Tensor& scale,
                         QuantSpec spec);

}  // namespace mq
