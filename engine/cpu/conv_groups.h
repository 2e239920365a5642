#pragma once
// Grouped convolutions on the CPU (Conv2dParams::groups > 1): each group is an ordinary
// convolution of its channel slices, run through the ungrouped kernels of engine/cpu/conv.cpp on
// contiguous copies of the slices; depthwise convs (one channel per group) take the direct loops
// of conv_depthwise.h. Called by those kernels' entry points; same contracts.
#include "engine/ops.h"

namespace mq::cpu {

void conv2d_grouped_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p);
void conv2d_grouped_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p);
void conv2d_grouped_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                                    Conv2dParams p);

}  // namespace mq::cpu
