#include "models/resnet_cifar.h"

namespace mq {

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, const LayerFactory& f) {
  conv1 = register_module("conv1", f.conv(in_planes, planes, 3, stride, 1));
  bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(planes));
  conv2 = register_module("conv2", f.conv(planes, planes, 3, 1, 1));
  bn2 = register_module("bn2", std::make_unique<BatchNorm2d>(planes));
  if (stride != 1 || in_planes != planes) {
    downsample = register_module("downsample", std::make_unique<Sequential>());
    down_conv = downsample->push(f.conv(in_planes, planes, 1, stride, 0));
    down_bn = downsample->push(std::make_unique<BatchNorm2d>(planes));
  }
}

namespace {
// relu?(bn(conv(x)) + residual?), residual undefined for none. In training, the modules' own
// forwards (the batch norm updates its running statistics; with the ReLU, batch_norm_relu
// takes the add and the ReLU into its passes); in eval mode one conv2d_bn_eval (the same
// values; on the CPU without the batch norm, add and ReLU passes).
Tensor conv_bn(Conv2d& conv, BatchNorm2d& bn, const Tensor& x, const Tensor& residual,
               bool relu_after) {
  if (!bn.is_training())
    return conv2d_bn_eval(x, conv.effective_weight(), {conv.stride, conv.padding},
                          bn.eval_params(), residual, relu_after);
  if (relu_after) return bn.forward_relu(conv.forward(x), residual);
  Tensor y = bn.forward(conv.forward(x));
  return residual.defined() ? add(y, residual) : y;
}
}  // namespace

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = conv_bn(*conv1, *bn1, x, Tensor(), true);
  Tensor shortcut = downsample ? conv_bn(*down_conv, *down_bn, x, Tensor(), false) : x;
  return conv_bn(*conv2, *bn2, out, shortcut, true);
}

Bottleneck::Bottleneck(int64_t in_planes, int64_t planes, int64_t stride, const LayerFactory& f) {
  conv1 = register_module("conv1", f.conv(in_planes, planes, 1, 1, 0));
  bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(planes));
  conv2 = register_module("conv2", f.conv(planes, planes, 3, stride, 1));
  bn2 = register_module("bn2", std::make_unique<BatchNorm2d>(planes));
  conv3 = register_module("conv3", f.conv(planes, planes * kExpansion, 1, 1, 0));
  bn3 = register_module("bn3", std::make_unique<BatchNorm2d>(planes * kExpansion));
  if (stride != 1 || in_planes != planes * kExpansion) {
    downsample = register_module("downsample", std::make_unique<Sequential>());
    down_conv = downsample->push(f.conv(in_planes, planes * kExpansion, 1, stride, 0));
    down_bn = downsample->push(std::make_unique<BatchNorm2d>(planes * kExpansion));
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = conv_bn(*conv1, *bn1, x, Tensor(), true);
  out = conv_bn(*conv2, *bn2, out, Tensor(), true);
  Tensor shortcut = downsample ? conv_bn(*down_conv, *down_bn, x, Tensor(), false) : x;
  return conv_bn(*conv3, *bn3, out, shortcut, true);
}

ResNetCifar::ResNetCifar(int depth, int64_t classes, int64_t in_channels, uint64_t seed,
                         const LayerFactory& f) {
  bool valid = false;
  for (int d : kValidDepths) valid |= d == depth;
  MQ_CHECK(valid, "ResNetCifar: unsupported depth {} (choose 8, 20, 32, 44, 56, 110 or 164)",
           depth);
  MQ_CHECK(classes > 0, "ResNetCifar: class count must be positive, got {}", classes);
  MQ_CHECK(in_channels > 0, "ResNetCifar: input channels must be positive, got {}", in_channels);
  const bool bottleneck = depth == 164;
  const int n = bottleneck ? (depth - 2) / 9 : (depth - 2) / 6;
  conv1 = register_module("conv1", f.conv(in_channels, 16, 3, 1, 1));
  bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(16));
  int64_t in_planes = 16;
  if (bottleneck) {
    layer1 = make_stage<Bottleneck>("layer1", in_planes, 16, 1, n, f);
    layer2 = make_stage<Bottleneck>("layer2", in_planes, 32, 2, n, f);
    layer3 = make_stage<Bottleneck>("layer3", in_planes, 64, 2, n, f);
  } else {
    layer1 = make_stage<BasicBlock>("layer1", in_planes, 16, 1, n, f);
    layer2 = make_stage<BasicBlock>("layer2", in_planes, 32, 2, n, f);
    layer3 = make_stage<BasicBlock>("layer3", in_planes, 64, 2, n, f);
  }
  fc = register_module("fc", f.linear(in_planes, classes));
  reset_parameters(seed);
}

template <class Block>
Sequential* ResNetCifar::make_stage(const std::string& name, int64_t& in_planes, int64_t planes,
                                    int64_t stride, int blocks, const LayerFactory& f) {
  auto stage = std::make_unique<Sequential>();
  for (int i = 0; i < blocks; ++i) {
    stage->push(std::make_unique<Block>(in_planes, planes, i == 0 ? stride : 1, f));
    in_planes = planes * Block::kExpansion;
  }
  return register_module(name, std::move(stage));
}

Tensor ResNetCifar::forward(const Tensor& x) {
  MQ_CHECK(x.dim() == 4 && x.size(1) == conv1->in_channels,
           "ResNetCifar: expected input [N, {}, H, W], got {}", conv1->in_channels, x.describe());
  Tensor out = conv_bn(*conv1, *bn1, x, Tensor(), true);
  for (Sequential* stage : {layer1, layer2, layer3})
    for (auto& [name, block] : stage->children())
      out = static_cast<ResidualBlock*>(block)->forward(out);
  // The reference's 8x8 average pool on a 32x32 input is a global pool; global also serves
  // 28x28 inputs (MNIST), whose last stage is 7x7.
  return fc->forward(global_avg_pool(out));
}

}  // namespace mq
