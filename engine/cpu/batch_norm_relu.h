#pragma once
// relu(batch_norm_train(x) + residual?) on the CPU in one pass over the activations each way
// (engine/cpu/batch_norm.cpp; the op is batch_norm_relu in engine/ops.h). x [N, C, H, W] with
// H * W > 1, f32 or f64; residual undefined for none. The results are bit for bit those of
// batch_norm, add and relu run one after another.
#include "engine/tensor.h"

namespace mq::cpu {

void batch_norm_relu_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   Tensor& running_mean, Tensor& running_var, double momentum,
                                   double eps, const Tensor& residual, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd);

// gx, gw, gb may be undefined when not needed; gr (the residual's gradient) is defined exactly
// when there is a residual.
void batch_norm_relu_backward_train(const Tensor& gy, const Tensor& x, const Tensor& weight,
                                    const Tensor& bias, const Tensor& residual,
                                    const Tensor& save_mean, const Tensor& save_invstd,
                                    Tensor& gx, Tensor& gw, Tensor& gb, Tensor& gr);

}  // namespace mq::cpu
