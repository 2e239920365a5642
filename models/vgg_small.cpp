#include "models/vgg_small.h"

#include <string>

namespace mq {

VggSmall::VggSmall(int64_t classes, int64_t in_channels, int64_t height, int64_t width,
                   const LayerFactory& f) {
  MQ_CHECK(height >= 8 && width >= 8, "vgg-small: the input must be at least 8x8 (three 2x2 "
           "poolings), got {}x{}", height, width);
  const int64_t widths[6] = {128, 128, 256, 256, 512, 512};
  int64_t in = in_channels;
  for (int i = 0; i < 6; ++i) {
    conv[i] = register_module("conv" + std::to_string(i), f.conv(in, widths[i], 3, 1, 1));
    bn[i] = register_module("bn" + std::to_string(i), std::make_unique<BatchNorm2d>(widths[i]));
    in = widths[i];
  }
  fc = register_module("fc", f.linear(512 * (height / 8) * (width / 8), classes));
}

Tensor VggSmall::forward(const Tensor& x) {
  Tensor h = x;
  for (int i = 0; i < 6; ++i) {
    h = relu(bn[i]->forward(conv[i]->forward(h)));
    if (i % 2 == 1) h = max_pool2d(h, {.kernel = 2, .stride = 2});
  }
  return fc->forward(h.reshape({h.size(0), -1}));
}

}  // namespace mq
