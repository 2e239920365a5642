// custom-cnn: MetaQuant on a network of your own, in one file and with no library edit
// (docs/custom-models.md walks through it).
//
// 1. Define the model: a mq::Model whose convs and linears come from the LayerFactory it is
//    given, so the same class trains in full precision (plain layers) and quantized (QConv2d /
//    QLinear, which the MetaQuant trainer finds by walking the module tree).
// 2. Register it in the zoo under a name.
// 3. Run mqtrain's command line: pretrain, quantize, eval, verify-golden, --resume, logs and
//    checkpoints all work as they do for `mqtrain`.
//
//   custom_cnn pretrain -n 10 --save fp-state             # Fashion-MNIST by default
//   custom_cnn quantize -q dorefa -bw 1 -meta MultiFC --pretrained fp-state
//   custom_cnn verify-golden tests/data/golden/custom-cnn  # 18 of 18 golden case(s) pass
//
// The model is the one of tests/data/golden/custom-cnn/manifest.json: conv-bn-relu blocks,
// max pooling, a biased conv without batch norm, a grouped strided conv, two linears.
#include <memory>

#include "engine/ops.h"
#include "models/model.h"
#include "models/zoo.h"
#include "tools/cli/mqtrain_cli.h"

namespace {

using mq::BatchNorm2d;
using mq::Conv2d;
using mq::Linear;
using mq::Tensor;

class CustomCnn : public mq::Model {
 public:
  explicit CustomCnn(const mq::ModelArgs& args) {
    const mq::LayerFactory& f = *args.layers;  // plain or quantized convs and linears
    // register_module names each layer as PyTorch's state_dict does ("conv4.bias").
    // f.conv(in, out, kernel, stride, padding, groups = 1, bias = false)
    conv1 = register_module("conv1", f.conv(args.in_channels, 16, 3, 1, 1));
    bn1 = register_module("bn1", std::make_unique<BatchNorm2d>(16));
    conv2 = register_module("conv2", f.conv(16, 16, 3, 1, 1));
    bn2 = register_module("bn2", std::make_unique<BatchNorm2d>(16));
    conv3 = register_module("conv3", f.conv(16, 32, 3, 1, 1));
    bn3 = register_module("bn3", std::make_unique<BatchNorm2d>(32));
    conv4 = register_module("conv4", f.conv(32, 32, 3, 1, 1, /*groups=*/1, /*bias=*/true));
    conv5 = register_module("conv5", f.conv(32, 64, 3, 2, 1, /*groups=*/2));
    bn5 = register_module("bn5", std::make_unique<BatchNorm2d>(64));
    // 64 channels of 4x4 after two poolings and a stride of 2, from 32x32 (CIFAR) or 28x28
    // (Fashion-MNIST) inputs.
    fc1 = register_module("fc1", f.linear(64 * 4 * 4, 64));
    fc2 = register_module("fc2", f.linear(64, args.classes));
  }

  Tensor forward(const Tensor& x) override {
    Tensor h = mq::relu(bn1->forward(conv1->forward(x)));
    h = mq::relu(bn2->forward(conv2->forward(h)));
    h = mq::max_pool2d(h, {.kernel = 2, .stride = 2});
    h = mq::relu(bn3->forward(conv3->forward(h)));
    h = mq::relu(conv4->forward(h));
    h = mq::max_pool2d(h, {.kernel = 2, .stride = 2});
    h = mq::relu(bn5->forward(conv5->forward(h)));
    h = h.reshape({h.size(0), -1});  // flatten in (C, H, W) order
    return fc2->forward(mq::relu(fc1->forward(h)));
  }

 private:
  Conv2d *conv1, *conv2, *conv3, *conv4, *conv5;
  BatchNorm2d *bn1, *bn2, *bn3, *bn5;
  Linear *fc1, *fc2;
};

}  // namespace

int main(int argc, char** argv) {
  mq::register_model("custom-cnn", "the worked example of docs/custom-models.md",
                     [](const mq::ModelArgs& args) { return std::make_unique<CustomCnn>(args); });
  return mq::tools::mqtrain_main(
      argc, argv, {},
      {.program = "custom_cnn", .model = "custom-cnn", .dataset = "fashion-mnist"});
}
