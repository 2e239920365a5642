#pragma once
// Model: a network the trainers (STE and MetaQuant), evaluation, per-epoch checkpoints,
// `--resume` and the golden replay all take. A model is a Module (state_dict names and order,
// train/eval, moving, saving) with a forward from images to logits. Its weight layers are found
// by walking its module tree, so a model lists nothing: build it from a LayerFactory (or with
// QConv2d/QLinear directly) and the MetaQuant trainer finds every quantized layer.
//
//   class Net : public mq::Model {
//    public:
//     explicit Net(const mq::LayerFactory& f) {
//       conv = register_module("conv", f.conv(3, 16, 3, 1, 1));
//       fc = register_module("fc", f.linear(16, 10));
//     }
//     mq::Tensor forward(const mq::Tensor& x) override {
//       return fc->forward(mq::global_avg_pool(mq::relu(conv->forward(x))));
//     }
//     mq::Conv2d* conv;
//     mq::Linear* fc;
//   };
//
// docs/custom-models.md walks through a whole example (docs/examples/custom_cnn.cpp).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/layers.h"

namespace mq {

class Model : public Module {
 public:
  // x [N, C, H, W] -> logits [N, classes]. In training mode the forward records history for
  // backward and updates batch-norm statistics; in eval mode (under NoGradGuard) it need not.
  virtual Tensor forward(const Tensor& x) = 0;

  // Draws the initial parameters from `seed`: one InitRng stream, every weight layer's
  // reset_parameters and every batch norm's reset in state_dict order. Override for another
  // initialization.
  virtual void reset_parameters(uint64_t seed);
};

// Every conv and linear layer (WeightLayer) of a module tree, in state_dict order, with its
// state_dict name ("layer2.0.downsample.0").
std::vector<std::pair<std::string, WeightLayer*>> weight_layers(Module& root);

}  // namespace mq
