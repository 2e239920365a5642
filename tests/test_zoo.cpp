// The model zoo (models/zoo.h): every model by name, its output and state_dict names, a
// finite-difference check of its backward on a tiny input, and a short MetaQuant run.
#include <cmath>
#include <filesystem>
#include <limits>
#include <unistd.h>

#include "meta/quantized_layers.h"
#include "meta/trainers.h"
#include "meta/run/training_run.h"
#include "models/zoo.h"
#include "op_test.h"
#include "test_data_util.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {

struct ZooCase {
  const char* name;
  int64_t weight_layers;       // convs and linears
  const char* first, *last;    // first and last state_dict names
  const char* some;            // a name inside, with
  Shape some_shape;            // its shape
};

const ZooCase kZoo[] = {
    {"resnet164", 1 + 3 * 18 * 3 + 3 + 1, "conv1.weight", "fc.bias", "layer3.17.conv3.weight",
     {256, 64, 1, 1}},
    {"vgg-small", 7, "conv0.weight", "fc.bias", "fc.weight", {10, 512 * 4 * 4}},
    {"mobilenetv2", 1 + 17 * 3 + 4 + 1 + 1, "conv1.weight", "linear.bias",
     "layers.16.conv2.weight", {960, 1, 3, 3}},
};

std::map<std::string, Shape> shapes(const NamedTensors& named) {
  std::map<std::string, Shape> m;
  for (const auto& [n, t] : named) m[n] = t.shape();
  return m;
}

}  // namespace

TEST_CASE("zoo: every model by name, any case, and a clear error for an unknown one", "[models]") {
  for (const char* name : {"resnet20", "ResNet20", "RESNET110", "resnet164", "vgg-small",
                           "VGG-Small", "mobilenetv2", "MobileNetV2"})
    CHECK(has_model(name));
  CHECK_THROWS_WITH(make_model("resnet18", {}, 0),
                    Catch::Contains("unknown model 'resnet18': choose one of") &&
                        Catch::Contains("resnet164") && Catch::Contains("vgg-small") &&
                        Catch::Contains("mobilenetv2"));
  CHECK_THROWS_WITH(register_model("resnet20", "again", [](const ModelArgs&) {
                      return std::unique_ptr<Model>();
                    }),
                    Catch::Contains("already a model"));
  CHECK_THROWS_WITH(register_model("Bad Name", "x", [](const ModelArgs&) {
                      return std::unique_ptr<Model>();
                    }),
                    Catch::Contains("is not a model name"));
  CHECK_THROWS_WITH(make_model("vgg-small", {.height = 4, .width = 4}, 0),
                    Catch::Contains("model vgg-small: vgg-small: the input must be at least 8x8"));
}

TEST_CASE("zoo: output shape, state_dict names and quantized layers of each model", "[models]") {
  for (const ZooCase& z : kZoo) {
    INFO(z.name);
    QuantizedLayerFactory q({Quantizer::dorefa, 1});
    auto plain = make_model(z.name, {.classes = 10}, 1);
    auto quant = make_model(z.name, {.classes = 10, .layers = &q}, 1);
    const NamedTensors sd = plain->state_dict();
    REQUIRE(sd.front().first == z.first);
    REQUIRE(sd.back().first == z.last);
    const auto m = shapes(sd);
    REQUIRE(m.count(z.some));
    CHECK(m.at(z.some) == z.some_shape);
    CHECK(shapes(quant->state_dict()) == m);  // the same names and shapes, quantized or not
    CHECK(int64_t(weight_layers(*plain).size()) == z.weight_layers);
    CHECK(int64_t(quantized_layers(*quant).size()) == z.weight_layers);
    CHECK(quantized_layers(*plain).empty());
    // Same seed, same parameters.
    auto again = make_model(z.name, {.classes = 10}, 1);
    CHECK(test::to_doubles(again->state_dict()[3].second) == test::to_doubles(sd[3].second));

    NoGradGuard ng;
    plain->eval();
    Tensor logits = plain->forward(test::randn({2, 3, 32, 32}, 5, DType::f32));
    CHECK(logits.shape() == Shape{2, 10});
  }
}

TEST_CASE("zoo: each model's backward against central differences on a tiny input", "[models]") {
  for (const ZooCase& z : kZoo) {
    INFO(z.name);
    auto model = make_model(z.name, {.classes = 3, .in_channels = 1, .height = 16, .width = 16}, 2);
    model->to(DType::f64);
    model->train();
    const Tensor x = test::randn({4, 1, 16, 16}, 3);
    const Tensor w = test::randn({4, 3}, 4);  // loss = sum(w * logits)
    auto loss_of = [&] { return sum(mul(model->forward(x), w)); };
    model->zero_grad();
    loss_of().backward();
    // Three elements of the first, a middle and the last weight layer; BN in train mode with its
    // running statistics updated by every forward, which the loss does not read.
    auto layers = weight_layers(*model);
    // Under the sanitizers (test::kSanitized, 10x slower) the middle and last layers only.
    std::vector<size_t> checked = {layers.size() / 2, layers.size() - 1};
    if (!test::kSanitized) checked.insert(checked.begin(), 0);
    for (size_t li : checked) {
      Tensor& p = layers[li].second->weight;
      const double grad = p.grad().to_vector<double>()[1];
      double* v = p.data<double>();
      const double keep = v[1];
      // Deep nets at initialization, with batch norm over a few values, curve strongly: the
      // central difference of the first layer of ResNet-164 reaches the analytic value only
      // below h = 1e-8. The closest of a shrinking sequence of steps is compared.
      double closest = std::numeric_limits<double>::infinity(), numeric = 0;
      for (double h : {1e-6, 1e-7, 1e-8, 1e-9}) {
        v[1] = keep + h;
        const double up = loss_of().item();
        v[1] = keep - h;
        const double down = loss_of().item();
        v[1] = keep;
        const double d = (up - down) / (2 * h);
        if (std::abs(d - grad) < closest) {
          closest = std::abs(d - grad);
          numeric = d;
        }
        if (closest <= 1e-5 + 1e-4 * std::abs(numeric)) break;
      }
      INFO(layers[li].first << ": analytic " << grad << ", numeric " << numeric);
      CHECK(closest <= 1e-5 + 1e-4 * std::abs(numeric));
    }
  }
}

TEST_CASE("zoo: a short MetaQuant run of each model on synthetic data", "[models][run]") {
  const fs::path root = fs::temp_directory_path() / ("mq_test_zoo_" + std::to_string(getpid()));
  fs::remove_all(root);
  for (const ZooCase& z : kZoo) {
    // Under the sanitizers the one model with depthwise convs and ReLU6 (2.5 min for all three).
    if (test::kSanitized && std::string(z.name) != "mobilenetv2") continue;
    INFO(z.name);
    RunSettings s;
    s.model = z.name;
    s.dataset = "synthetic:32";
    s.batch = 16;
    s.epochs = 1;
    s.quantized = true;
    s.backward = "MultiFC";
    s.hidden = 8;
    s.results = root.string();
    s.run_name = z.name;
    const RunResult r = run_training(s, 0);
    REQUIRE(r.test_acc.size() == 1);
    CHECK(std::isfinite(r.test_acc[0]));
    CHECK(fs::exists(root / (std::string(z.name) + "-synthetic:32") / "runs-Quant" / z.name /
                     "checkpoint.mqck"));
  }
  fs::remove_all(root);
}

namespace {
// A user model that makes its layers itself instead of asking the factory: never quantized.
class OwnLayers : public Model {
 public:
  explicit OwnLayers(int64_t fc_in) {
    conv = register_module("conv", std::make_unique<Conv2d>(3, 4, 3, 1, 1));
    fc = register_module("fc", std::make_unique<Linear>(fc_in, 10));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(conv->forward(x));
    return fc->forward(h.reshape({h.size(0), -1}));
  }
  Conv2d* conv;
  Linear* fc;
};
}  // namespace

TEST_CASE("zoo: a user model's mistakes get errors naming the layer or tensor", "[models]") {
  // No quantized layer: MetaQuant refuses, and so does a quantize run.
  OwnLayers own(4 * 8 * 8);
  MetaNet meta({MetaKind::multi_fc, 4, 3, MetaAct::none}, 1);
  CHECK_THROWS_WITH(MetaQuantTrainer(own, meta), Catch::Contains("no quantized layer"));
  register_model("test-own-layers", "no factory", [](const ModelArgs&) {
    return std::make_unique<OwnLayers>(4 * 32 * 32);
  });
  RunSettings s;
  s.model = "test-own-layers";
  s.dataset = "synthetic:16";
  s.quantized = true;
  s.results = (fs::temp_directory_path() / ("mq_test_zoo_own_" + std::to_string(getpid()))).string();
  CHECK_THROWS_WITH(run_training(s, 0), Catch::Contains("--model test-own-layers: the model has "
                                                        "no quantized layer"));
  fs::remove_all(s.results);

  // A layer whose shape does not fit its input: the message names the layer.
  NoGradGuard ng;
  CHECK_THROWS_WITH(own.forward(test::randn({2, 3, 16, 16}, 1, DType::f32)),
                    Catch::Contains("layer 'fc' (Linear 256 -> 10 features): expected input "
                                    "[N, 256]"));
  CHECK_THROWS_WITH(own.forward(test::randn({2, 1, 8, 8}, 1, DType::f32)),
                    Catch::Contains("layer 'conv' (Conv2d 3 -> 4 channels"));
  auto mobile = make_model("mobilenetv2", {}, 0);
  CHECK_THROWS_WITH(mobile->forward(test::randn({1, 1, 32, 32}, 1, DType::f32)),
                    Catch::Contains("layer 'conv1' (Conv2d 3 -> 32 channels"));

  // A state_dict that misses, adds or misshapes a tensor: named.
  TensorMap state;
  for (const auto& [name, t] : own.state_dict()) state[name] = t.clone();
  TensorMap missing = state, extra = state, misshaped = state;
  missing.erase("fc.bias");
  extra["fc.scale"] = Tensor::zeros({10});
  misshaped["conv.weight"] = Tensor::zeros({4, 3, 5, 5});
  CHECK_THROWS_WITH(own.load_state_dict(missing), Catch::Contains("missing keys: fc.bias"));
  CHECK_THROWS_WITH(own.load_state_dict(extra), Catch::Contains("unexpected keys: fc.scale"));
  CHECK_THROWS_WITH(own.load_state_dict(misshaped), Catch::Contains("'conv.weight' has shape"));
}
