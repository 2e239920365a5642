#include "models/mobilenet_v2.h"

namespace mq {

InvertedResidual::InvertedResidual(int64_t in, int64_t out, int64_t expansion, int64_t s,
                                   const LayerFactory& f)
    : stride(s) {
  const int64_t planes = expansion * in;
  conv1 = register_module("conv1", f.conv(in, planes, 1, 1, 0));
  bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(planes));
  conv2 = register_module("conv2", f.conv(planes, planes, 3, stride, 1, /*groups=*/planes));
  bn2 = register_module("bn2", std::make_unique<BatchNorm2d>(planes));
  conv3 = register_module("conv3", f.conv(planes, out, 1, 1, 0));
  bn3 = register_module("bn3", std::make_unique<BatchNorm2d>(out));
  if (stride == 1 && in != out) {
    auto shortcut = std::make_unique<Sequential>();
    shortcut_conv = shortcut->push(f.conv(in, out, 1, 1, 0));
    shortcut_bn = shortcut->push(std::make_unique<BatchNorm2d>(out));
    register_module("shortcut", std::move(shortcut));
  }
}

Tensor InvertedResidual::forward(const Tensor& x) {
  Tensor h = relu6(bn1->forward(conv1->forward(x)));
  h = relu6(bn2->forward(conv2->forward(h)));
  h = bn3->forward(conv3->forward(h));
  if (stride != 1) return h;  // no residual across a stride
  return add(h, shortcut_conv ? shortcut_bn->forward(shortcut_conv->forward(x)) : x);
}

MobileNetV2::MobileNetV2(int64_t classes, int64_t in_channels, const LayerFactory& f) {
  // (expansion, out channels, blocks, stride of the first block)
  static constexpr int64_t kStages[7][4] = {{1, 16, 1, 1},  {6, 24, 2, 1},  {6, 32, 3, 2},
                                            {6, 64, 4, 2},  {6, 96, 3, 1},  {6, 160, 3, 2},
                                            {6, 320, 1, 1}};
  conv1 = register_module("conv1", f.conv(in_channels, 32, 3, 1, 1));
  bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(32));
  auto blocks = std::make_unique<Sequential>();
  int64_t in = 32;
  for (const auto& stage : kStages)
    for (int64_t b = 0; b < stage[2]; ++b) {
      blocks->push(std::make_unique<InvertedResidual>(in, stage[1], stage[0],
                                                      b == 0 ? stage[3] : 1, f));
      in = stage[1];
    }
  layers = register_module("layers", std::move(blocks));
  conv2 = register_module("conv2", f.conv(320, 1280, 1, 1, 0));
  bn2 = register_module("bn2", std::make_unique<BatchNorm2d>(1280));
  linear = register_module("linear", f.linear(1280, classes));
}

Tensor MobileNetV2::forward(const Tensor& x) {
  Tensor h = relu6(bn1->forward(conv1->forward(x)));
  for (auto& [name, block] : layers->children())
    h = static_cast<InvertedResidual*>(block)->forward(h);
  h = relu6(bn2->forward(conv2->forward(h)));
  return linear->forward(global_avg_pool(h));
}

}  // namespace mq
