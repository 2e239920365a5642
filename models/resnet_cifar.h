#pragma once
// ResNet for CIFAR (depth 6n+2: 20, 32, 44, 56, 110; 8 for quick tests; 164 with bottleneck
// blocks, as the reference's resnet164_cifar) exactly as
// docs/metaquant.md §2, with PyTorch state_dict names. Convs and fc come from a LayerFactory, so
// the same model can be built with quantized layers (22 weight layers in ResNet20, found by
// weight_layers(), models/model.h). `mqtrain -m resnet20` builds it through the zoo
// (models/zoo.h).
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"

namespace mq {

// A residual block of a stage; its output has planes * expansion channels.
class ResidualBlock : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
};

// conv3x3-BN-ReLU, conv3x3-BN, + shortcut, ReLU (ResNet-20 ... 110).
class BasicBlock : public ResidualBlock {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, const LayerFactory& f);
  Tensor forward(const Tensor& x) override;

  Conv2d* conv1;
  BatchNorm2d* bn1;
  Conv2d* conv2;
  BatchNorm2d* bn2;
  Sequential* downsample = nullptr;  // 1x1 conv + BN when the shape changes, else identity
  Conv2d* down_conv = nullptr;
  BatchNorm2d* down_bn = nullptr;
};

// conv1x1-BN-ReLU, conv3x3(stride)-BN-ReLU, conv1x1(4 planes)-BN, + shortcut, ReLU
// (ResNet-164, the reference's resnet164_cifar).
class Bottleneck : public ResidualBlock {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t in_planes, int64_t planes, int64_t stride, const LayerFactory& f);
  Tensor forward(const Tensor& x) override;

  Conv2d *conv1, *conv2, *conv3;
  BatchNorm2d *bn1, *bn2, *bn3;
  Sequential* downsample = nullptr;  // 1x1 conv + BN when the shape changes, else identity
  Conv2d* down_conv = nullptr;
  BatchNorm2d* down_bn = nullptr;
};

class ResNetCifar : public Model {
 public:
  // 6n+2 with basic blocks; 164 = 9n+2 with bottleneck blocks (n = 18).
  static constexpr int kValidDepths[] = {8, 20, 32, 44, 56, 110, 164};

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
  template <class Block>
  Sequential* make_stage(const std::string& name, int64_t& in_planes, int64_t planes,
                         int64_t stride, int blocks, const LayerFactory& f);
};

}  // namespace mq
