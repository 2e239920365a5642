#pragma once
// The meta gradient as one fused autograd op over the rows of ALL quantized layers (flat g_hat
// and W~ of n elements), with kernels/meta doing the per-row work on the CPU or CUDA:
//  - FC-Grad / MultiFC without activation are linear: s = W_last ... W_1 (a [1,1] product of
//    the weights, recorded with autograd), G = s * g_hat or g_hat * (s * W~); the backward is one
//    reduction ds = sum dG * u * v, and autograd takes ds back into every weight. No [n, h].
//  - LSTMFC on the CPU: one fused pass per chunk of rows (recurrent GEMM h_prev W_hh^T, gates,
//    cell, fc1, G) that keeps K = da/dm [n, 4h] for the backward, which is then one GEMM per
//    chunk, [dW_hh | dw_ih | db] = K^T [dm h_prev | dm x | dm] (no recomputed gates: 44 rather
//    than 65 GFLOP per ResNet20 step at h = 100). On CUDA the backward recomputes the gates
//    chunk by chunk (no [n, 4h] kept) with dW_hh = da^T h_prev as a GEMM per chunk.
//  - FC-Grad / MultiFC with relu/tanh: the plain-op form (meta_gradient_reference).
// Values and phi gradients equal meta_gradient_reference's (tests/test_meta.cpp).
#include <memory>

#include "meta/meta_net.h"

namespace mq {

// G [n] (the shape of g_hat) with history into net's parameters. LSTMFC: reads `state` and
// stores the new (h', c') in `state_out` (detached) when given.
Tensor meta_gradient(const MetaNet& net, const Tensor& g_hat, const Tensor& w_tilde,
                     const LstmState& state = {}, LstmState* state_out = nullptr);

// s = W_last @ ... @ W_1 ([1, 1]) of a linear FC-Grad/MultiFC, with history.
Tensor collapse_linear(const MetaNet& net);

// One meta gradient feeding many consumers (the quantized layers), each of which uses a slice
// of G: rather than one full-size gradient per slice, consumers record `token` as an input and
// write dL/d(their slice) into *dG; the token's backward (run after all of them, by topological
// order) hands the whole dG to G's history in one fused backward.
struct SplitGradient {
  Tensor G;                    // [n] values, no history
  Tensor token;                // 0-dim zero with history into G's graph
  std::shared_ptr<Tensor> dG;  // [n] zeros, filled by the consumers' backward
};
SplitGradient split_gradient(const Tensor& G);

}  // namespace mq
