#pragma once
// Depthwise convolutions on the CPU (groups == C == K, one filter per channel: MobileNet's 3x3):
// direct loops over each (image, channel) plane. The grouped path (conv_groups.h) would run one
// ungrouped convolution per channel on copied slices, which at 960 channels costs more in calls
// and copies than in arithmetic. Called by conv_groups.cpp; same contracts.
#include "engine/ops.h"

namespace mq::cpu {

// x [N, C, H, W] with w [C, 1, R, S] and groups == C.
bool is_depthwise(const Tensor& x, const Tensor& w, Conv2dParams p);

void conv2d_depthwise_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p);
void conv2d_depthwise_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx,
                                     Conv2dParams p);
// Sums over the images of each channel in image order: the same at any thread count.
void conv2d_depthwise_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                                      Conv2dParams p);

}  // namespace mq::cpu
