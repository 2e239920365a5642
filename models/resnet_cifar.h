#pragma once
// ResNet for CIFAR (depth 6n+2: 20, 32, 44, 56, 110; 8 for quick tests) exactly as
// docs/metaquant.md §2, with PyTorch state_dict names. Convs and fc come from a LayerFactory, so
// the same model can be built with quantized layers (22 weight layers in ResNet20, found by
// weight_layers(), models/model.h). `mqtrain -m resnet20` builds it through the zoo
// (models/zoo.h).
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"

namespace mq {

class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, const LayerFactory& f);
  Tensor forward(const Tensor& x);

  Conv2d* conv1;
  BatchNorm2d* bn1;
  Conv2d* conv2;
  BatchNorm2d* bn2;
  Sequential* downsample = nullptr;  // 1x1 conv + BN when the shape changes, else identity
  Conv2d* down_conv = nullptr;
  BatchNorm2d* down_bn = nullptr;
};

class ResNetCifar : public Model {
 public:
  static constexpr int kValidDepths[] = {8, 20, 32, 44, 56, 110};

  // Throws mq::Error for an unsupported depth or class/channel count. Parameters are drawn
  // from `seed` (see reset_parameters).
  ResNetCifar(int depth, int64_t classes = 10, int64_t in_channels = 3, uint64_t seed = 0,
              const LayerFactory& factory = default_layer_factory());

  // x [N, in_channels, H, W] -> logits [N, classes]
  // Parameters (Model::reset_parameters): conv kaiming-normal (fan_out, ReLU), BN weight 1 /
  // bias 0 / running stats reset, fc PyTorch default; one stream in state_dict order.
  Tensor forward(const Tensor& x) override;

  Conv2d* conv1;
  BatchNorm2d* bn1;
  Sequential* layer1;
  Sequential* layer2;
  Sequential* layer3;
  Linear* fc;

 private:
  Sequential* make_stage(const std::string& name, int64_t& in_planes, int64_t planes,
                         int64_t stride, int blocks, const LayerFactory& f);
};

}  // namespace mq
