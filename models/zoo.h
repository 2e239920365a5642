#pragma once
// The model zoo: every network `mqtrain -m NAME` can build, by name. mq's own models are
// registered here; a program registers its own (docs/examples/custom_cnn.cpp) before it runs
// the mqtrain command line, and the run, `--resume`, eval and verify-golden then build it by
// that name like any other. Names are matched case-insensitively ("ResNet20" is resnet20).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"

namespace mq {

// What a model is built for: the dataset's classes and input channels, and its layers (plain
// ones for full precision, QuantizedLayerFactory's for quantized training).
struct ModelArgs {
  int64_t classes = 10;
  int64_t in_channels = 3;
  int64_t height = 32, width = 32;  // the input images (a model with a flatten sizes its fc)
  const LayerFactory* layers = &default_layer_factory();
};
using ModelBuilder = std::function<std::unique_ptr<Model>(const ModelArgs&)>;

// Adds `name` (lowercase letters, digits, '-' and '_'; at most 64 characters) to the zoo.
// `summary` is one line for listings. A name already taken is an error.
void register_model(const std::string& name, const std::string& summary, ModelBuilder build);

// Builds `name` and draws its parameters from `seed` (Model::reset_parameters). An unknown name
// is an mq::Error listing the zoo; a builder's error is prefixed with the model's name.
std::unique_ptr<Model> make_model(const std::string& name, const ModelArgs& args, uint64_t seed);

bool has_model(const std::string& name);
std::vector<std::string> model_names();  // sorted
std::string model_summary(const std::string& name);
// "resnet8, resnet20, ..." for messages.
std::string model_list();

}  // namespace mq
