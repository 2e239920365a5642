#pragma once
// VGG-Small for CIFAR, the binary-network literature's: 2x128C3, max-pool, 2x256C3, max-pool,
// 2x512C3, max-pool, fc; batch norm and ReLU after every conv (no conv bias). State_dict names
// conv0..conv5, bn0..bn5, fc. The fc takes 512 x (H/8) x (W/8) features (8192 on CIFAR).
#include "models/model.h"

namespace mq {

class VggSmall : public Model {
 public:
  VggSmall(int64_t classes, int64_t in_channels, int64_t height, int64_t width,
           const LayerFactory& f = default_layer_factory());
  Tensor forward(const Tensor& x) override;

  Conv2d* conv[6];
  BatchNorm2d* bn[6];
  Linear* fc;
};

}  // namespace mq
