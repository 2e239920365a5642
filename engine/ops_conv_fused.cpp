// conv2d_bn_eval: a ResNet block's conv, eval-mode batch norm, residual add and ReLU in one op
// for inference (engine/ops.h). The fused form exists on the CPU in f32 (engine/cpu/
// conv_epilogue.h); everywhere else, and whenever a gradient is needed, it runs the separate ops.
#include <vector>

#include "engine/cpu/bn_eval_affine.h"
#include "engine/cpu/conv_epilogue.h"
#include "engine/ops_nn_common.h"

namespace mq {

namespace {
Tensor composed(const Tensor& x, const Tensor& weight, Conv2dParams conv,
                const BatchNormEvalParams& bn, const Tensor& residual, bool relu_after) {
  Tensor running_mean = bn.running_mean, running_var = bn.running_var;  // eval: only read
  Tensor y = batch_norm(conv2d(x, weight, conv), bn.weight, bn.bias, running_mean, running_var,
                        BatchNormParams{false, 0.1, bn.eps});
  if (residual.defined()) y = add(y, residual);
  return relu_after ? relu(y) : y;
}

}  // namespace

Tensor conv2d_bn_eval(const Tensor& x, const Tensor& weight, Conv2dParams conv,
                      const BatchNormEvalParams& bn, const Tensor& residual, bool relu_after) {
  const bool fusable = x.is_cpu() && x.dtype() == DType::f32 &&
                       !needs_grad({x, weight, bn.weight, bn.bias, residual});
  if (!fusable) return composed(x, weight, conv, bn, residual, relu_after);

  MQ_CHECK(conv.groups == 1, "conv2d_bn_eval: grouped convolutions are not fused (groups {}); "
           "use conv2d and batch_norm", conv.groups);
  Tensor y = nn_detail::conv2d_output(x, weight, conv, "conv2d_bn_eval");
  const int64_t k = y.size(1);
  nn_detail::check_batch_norm_params(y, k, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                     "conv2d_bn_eval");
  MQ_CHECK(bn.eps > 0, "conv2d_bn_eval: batch norm eps must be > 0, got {}", bn.eps);
  if (residual.defined()) {
    check_same_device(residual, y, "conv2d_bn_eval");
    check_same_dtype(residual, y, "conv2d_bn_eval");
    MQ_CHECK(residual.shape() == y.shape(),
             "conv2d_bn_eval: residual {} must have the conv's output shape {}",
             residual.describe(), shape_str(y.shape()));
  }
  std::vector<float> scale(static_cast<size_t>(k)), shift(static_cast<size_t>(k));
  cpu::bn_eval_affine(bn.weight.data<float>(), bn.bias.data<float>(),
                      bn.running_mean.data<float>(), bn.running_var.data<float>(), bn.eps, k,
                      scale.data(), shift.data());
  cpu::ConvEpilogue ep;
  ep.scale = scale.data();
  ep.shift = shift.data();
  ep.residual = residual.data<float>();
  ep.relu = relu_after;
  cpu::conv2d_forward_fused(x, weight, y, conv, ep);
  return y;
}

}  // namespace mq
