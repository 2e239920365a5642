#pragma once
// Shared by the NN op entry points (ops_conv.cpp, ops_linear.cpp, ops_nn.cpp): the per-device
// compute of engine/backend.h, on_device() and the common argument checks.
#include "engine/autograd.h"
#include "engine/backend.h"
#include "engine/dispatch.h"

namespace mq::nn_detail {

// A floating tensor of `dim` dimensions (when dim >= 0) on `like`'s device with its dtype.
inline void check_operand(const Tensor& t, const Tensor& like, int64_t dim, const char* op,
                          const char* arg) {
  check_defined(t, op, arg);
  check_floating(t, op, arg);
  if (dim >= 0) check_dim(t, dim, op, arg);
  if (&t != &like) {
    check_same_device(t, like, op);
    check_same_dtype(t, like, op);
  }
}

inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

// batch norm's parameters for a tensor `x` it normalizes, of `channels` channels: weight and bias
// undefined or [channels], running_mean and running_var [channels], all on x's device and dtype
// (ops_nn.cpp).
void check_batch_norm_params(const Tensor& x, int64_t channels, const Tensor& weight,
                             const Tensor& bias, const Tensor& running_mean,
                             const Tensor& running_var, const char* op);

// conv2d's argument checks; returns the uninitialized output [N, K, P, Q] (ops_conv.cpp).
Tensor conv2d_output(const Tensor& x, const Tensor& weight, Conv2dParams p, const char* op);

}  // namespace mq::nn_detail
