#pragma once
// The per-device compute behind the NN ops of ops.h. Every function here exists twice with the
// same signature: mq::cpu (engine/cpu/, Eigen, f32 and f64) and mq::cuda_ops (engine/cuda/,
// cuDNN/cuBLAS/own kernels, f32). Op entry points (engine/ops_*.cpp) validate, allocate the
// outputs and call one of them; outputs are preallocated, contiguous, same dtype and device.
#include "engine/ops.h"

#define MQ_DECLARE_BACKEND_OPS                                                                   \
  /* y [N,K,P,Q] = conv(x [N,C,H,W], w [K,C,R,S]) */                                             \
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p);              \
  void conv2d_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p);     \
  void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Conv2dParams p);    \
  /* c = op(a) @ op(b) + beta * c, row-major 2-D; op = transpose when the flag is set */         \
  void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double beta); \
  /* y [N, C, ...] += bias [C] per channel; gb [C] = sum of g [N, C, ...] over all but C,  */ \
  /* in order n, then the rest (a linear layer's [N, F] is the case without the rest)     */ \
  void add_channel_bias(Tensor& y, const Tensor& bias);                                          \
  void sum_channels(const Tensor& g, Tensor& gb);                                                \
  /* y [N,C] = mean over H,W of x [N,C,H,W]; gx = gy / (H*W) broadcast */                        \
  void global_avg_pool_forward(const Tensor& x, Tensor& y);                                      \
  void global_avg_pool_backward(const Tensor& gy, Tensor& gx);                                   \
  /* y, indices [N,C,P,Q] = max pooling of x [N,C,H,W] (indices i64, flat within the plane); */ \
  /* gx = gy scattered to the chosen elements (sums where windows overlap)                  */ \
  void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& indices, MaxPool2dParams p);        \
  void max_pool2d_backward(const Tensor& gy, const Tensor& indices, Tensor& gx, MaxPool2dParams p); \
  /* batch norm over N,H,W per channel. Training: normalizes with the biased batch variance,  */ \
  /* saves mean and 1/sqrt(var+eps), updates running stats (unbiased var) with momentum.      */ \
  /* weight/bias may be undefined (affine off).                                                */ \
  void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias,       \
                                Tensor& running_mean, Tensor& running_var, double momentum,      \
                                double eps, Tensor& y, Tensor& save_mean, Tensor& save_invstd);  \
  void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,        \
                               const Tensor& running_mean, const Tensor& running_var,            \
                               double eps, Tensor& y);                                           \
  /* gx, gw, gb may be undefined when not needed. */                                             \
  void batch_norm_backward_train(const Tensor& gy, const Tensor& x, const Tensor& weight,        \
                                 const Tensor& save_mean, const Tensor& save_invstd, Tensor& gx, \
                                 Tensor& gw, Tensor& gb);                                        \
  void batch_norm_backward_eval(const Tensor& gy, const Tensor& x, const Tensor& weight,         \
                                const Tensor& running_mean, const Tensor& running_var,           \
                                double eps, Tensor& gx, Tensor& gw, Tensor& gb);                 \
  /* loss (0-dim) = mean_i -log softmax(logits_i)[label_i]; probs [N,C] saved for backward */    \
  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,           \
                             Tensor& probs);                                                     \
  /* glogits = (probs - onehot(labels)) * gloss / N; gloss a 0-dim tensor */                     \
  void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gloss,     \
                              Tensor& glogits);                                                  \
  int64_t count_correct(const Tensor& logits, const Tensor& labels);

namespace mq::cpu {
MQ_DECLARE_BACKEND_OPS
}  // namespace mq::cpu

namespace mq::cuda_ops {
MQ_DECLARE_BACKEND_OPS
}  // namespace mq::cuda_ops
