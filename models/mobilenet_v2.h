#pragma once
// MobileNetV2 for 32x32 inputs: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1
// project; ReLU6 after the first two), the usual CIFAR strides (the first conv and the second
// stage at stride 1), a 1x1 conv to 1280 channels, global average pooling and a linear layer.
// State_dict names: conv1, bn1, layers.<i>.{conv1,bn1,conv2,bn2,conv3,bn3,shortcut.0,shortcut.1},
// conv2, bn2, linear.
#include "models/model.h"

namespace mq {

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t in, int64_t out, int64_t expansion, int64_t stride,
                   const LayerFactory& f);
  Tensor forward(const Tensor& x);

  const int64_t stride;
  Conv2d *conv1, *conv2, *conv3;
  BatchNorm2d *bn1, *bn2, *bn3;
  Conv2d* shortcut_conv = nullptr;  // stride 1 with in != out: 1x1 conv + BN; else identity
  BatchNorm2d* shortcut_bn = nullptr;
};

class MobileNetV2 : public Model {
 public:
  MobileNetV2(int64_t classes, int64_t in_channels, const LayerFactory& f = default_layer_factory());
  Tensor forward(const Tensor& x) override;

  Conv2d *conv1, *conv2;
  BatchNorm2d *bn1, *bn2;
  Sequential* layers;
  Linear* linear;
};

}  // namespace mq
