#pragma once
// Every engine op: one entry point each, validating shapes/dtypes/devices and dispatching to
// engine/cpu, engine/cuda or kernels/. Differentiable ops record autograd history (see
// autograd.h); their backward lives in the same .cpp as the forward. Ops never broadcast
// implicitly: shapes must match, except where an op says otherwise. The index of every op,
// these and the quantize and meta ops of the higher layers: meta/op_index.h.
#include <optional>

#include "engine/tensor.h"

namespace mq {

// ---- elementwise (engine/ops_elementwise.cpp) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor relu(const Tensor& a);
// x clamped to [lo, hi] (NaN stays NaN); the gradient passes where lo < x < hi, as PyTorch's
// Hardtanh (zero at the bounds themselves, unlike torch.clamp's).
Tensor hardtanh(const Tensor& a, double lo, double hi);
Tensor relu6(const Tensor& a);  // hardtanh(a, 0, 6), as torch.nn.ReLU6
Tensor tanh(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);         // sign(0) = 0; gradient zero
Tensor stop_gradient(const Tensor& a);  // value of a, no history (sg(.) of docs/metaquant.md §1.1)
// In place, no history: dst += src, dst += alpha * src.
void add_inplace(Tensor& dst, const Tensor& src);
void axpy_inplace(Tensor& dst, double alpha, const Tensor& src);

// ---- reductions (engine/ops_reduce.cpp); results are 0-dim tensors ----
Tensor sum(const Tensor& a);
Tensor mean(const Tensor& a);
Tensor max_abs(const Tensor& a);  // max |a|; gradient split evenly among ties (as PyTorch)

// ---- neural-network ops (engine/ops_nn.cpp, engine/ops_conv.cpp, ...) ----
struct Conv2dParams {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t groups = 1;  // C and K split into this many groups (C: depthwise)
};
// x [N, C, H, W], weight [K, C / groups, R, S] (, bias [K]) -> [N, K, P, Q]: output channels
// of group g (K / groups of them) see the input channels of group g only.
Tensor conv2d(const Tensor& x, const Tensor& weight, Conv2dParams params);
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dParams params);
// a [M, K] @ b [K, N] -> [M, N]
Tensor matmul(const Tensor& a, const Tensor& b);
// x [N, in], weight [out, in], bias [out] or undefined -> [N, out]  (x W^T + b, as PyTorch)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
// x [N, C, H, W] -> [N, C]
Tensor global_avg_pool(const Tensor& x);
struct MaxPool2dParams {
  int64_t kernel = 2;
  int64_t stride = 2;
  int64_t padding = 0;  // at most kernel / 2, as PyTorch; padding never wins
};
// x [N, C, H, W] -> [N, C, P, Q], P = (H + 2 padding - kernel) / stride + 1 (floor), each the
// maximum of its window; among equal maxima the first in row-major order, a NaN wins (as
// PyTorch). The gradient goes to the chosen element (summed where windows overlap).
Tensor max_pool2d(const Tensor& x, MaxPool2dParams params);

struct BatchNormParams {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
};
// x [N, C, H, W] or [N, C]; weight/bias [C] (may be undefined = affine off); running stats [C]
// updated in training mode with PyTorch semantics (biased variance to normalize, unbiased to
// update running_var); eval mode normalizes with the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  Tensor& running_mean, Tensor& running_var, BatchNormParams params);

// relu(batch_norm(x) + residual?), residual undefined for none: a ResNet block's BN(-add)-ReLU.
// In training on the CPU (x [N, C, H, W], f32 or f64) one pass over the activations each way,
// without storing the batch norm's or the add's output; the values and gradients are bit for bit
// those of batch_norm, add and relu in turn, which it runs everywhere else.
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       Tensor& running_mean, Tensor& running_var, BatchNormParams params,
                       const Tensor& residual);

// Eval-mode batch norm's parameters (weight and bias may be undefined: affine off).
struct BatchNormEvalParams {
  Tensor weight, bias, running_mean, running_var;
  double eps = 1e-5;
};
// relu?(batch_norm_eval(conv2d(x, weight)) + residual?), residual undefined for none: a ResNet
// block's conv-BN(-add)-ReLU at inference. On the CPU in f32 with nothing to differentiate, the
// affine, the residual and the ReLU run inside the conv's copy of its output (no pass of their
// own), rounded as the separate ops round them; otherwise it is those ops, autograd included.
Tensor conv2d_bn_eval(const Tensor& x, const Tensor& weight, Conv2dParams conv,
                      const BatchNormEvalParams& bn, const Tensor& residual, bool relu);

// logits [N, C] float, labels [N] i64 or i32 -> mean cross-entropy (0-dim); stable log-softmax.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);

// Number of correct argmax predictions (no gradient).
int64_t count_correct(const Tensor& logits, const Tensor& labels);

}  // namespace mq
