#pragma once
// The CPU f32 conv forward with an inference epilogue: per output element
//   v = fma(v, scale[k], shift[k]);  v = v + residual (if any);  v = v > 0 ? v : 0 (if relu)
// which is eval-mode batch norm, the residual add and the ReLU of a ResNet block, rounded as the
// separate ops round them. Where the conv copies its result into y (the im2col-free forward),
// the epilogue runs in that copy; otherwise in one pass after the conv.
#include "engine/ops.h"

namespace mq::cpu {

struct ConvEpilogue {
  const float* scale = nullptr;     // [K]
  const float* shift = nullptr;     // [K]
  const float* residual = nullptr;  // [N, K, P, Q] or null
  bool relu = false;
};

// x, w, y f32 on the CPU, y preallocated [N, K, P, Q].
void conv2d_forward_fused(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p,
                          const ConvEpilogue& e);

}  // namespace mq::cpu
