#include <cmath>
#include <filesystem>

#include "engine/io/npy.h"
#include "models/resnet_cifar.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;
namespace fs = std::filesystem;

namespace {
std::string golden_dir() { return std::string(MQ_TEST_DATA) + "/golden/metaquant-ref"; }

std::vector<std::string> names_of(const NamedTensors& v) {
  std::vector<std::string> r;
  for (auto& [n, t] : v) r.push_back(n);
  return r;
}

int64_t parameter_count(const Module& m) {
  int64_t n = 0;
  for (auto& [name, t] : m.named_parameters()) n += t.numel();
  return n;
}

// A factory whose layers have their own types: where QConv2d/QLinear plug in.
struct MarkedConv : Conv2d {
  using Conv2d::Conv2d;
};
struct MarkedLinear : Linear {
  using Linear::Linear;
};
struct MarkedFactory : LayerFactory {
  std::unique_ptr<Conv2d> conv(int64_t i, int64_t o, int64_t k, int64_t s, int64_t p,
                               int64_t groups, bool bias) const override {
    return std::make_unique<MarkedConv>(i, o, k, s, p, groups, bias);
  }
  std::unique_ptr<Linear> linear(int64_t i, int64_t o) const override {
    return std::make_unique<MarkedLinear>(i, o);
  }
};
}  // namespace

TEST_CASE("ResNet20 has PyTorch's state_dict names, order and shapes", "[models]") {
  ResNetCifar m(20, 10);
  auto sd = m.state_dict();
  auto names = names_of(sd);
  // 22 weight layers (21 convs incl. 2 downsample, fc), fc bias, 21 BNs with 5 entries each.
  REQUIRE(sd.size() == 22 + 1 + 21 * 5);
  REQUIRE(names[0] == "conv1.weight");
  REQUIRE(names[1] == "bn1.weight");
  REQUIRE(names[2] == "bn1.bias");
  REQUIRE(names[3] == "bn1.running_mean");
  REQUIRE(names[4] == "bn1.running_var");
  REQUIRE(names[5] == "bn1.num_batches_tracked");
  REQUIRE(names[6] == "layer1.0.conv1.weight");
  REQUIRE(names.back() == "fc.bias");
  REQUIRE(names[names.size() - 2] == "fc.weight");
  std::map<std::string, Shape> shapes;
  for (auto& [n, t] : sd) shapes[n] = t.shape();
  REQUIRE(shapes["layer2.0.downsample.0.weight"] == Shape{32, 16, 1, 1});
  REQUIRE(shapes["layer2.0.downsample.1.running_var"] == Shape{32});
  REQUIRE(shapes["layer3.0.conv1.weight"] == Shape{64, 32, 3, 3});
  REQUIRE(shapes["layer3.2.conv2.weight"] == Shape{64, 64, 3, 3});
  REQUIRE(shapes["fc.weight"] == Shape{10, 64});
  REQUIRE(shapes.count("layer1.0.downsample.0.weight") == 0);

  auto wl = weight_layers(m);
  REQUIRE(wl.size() == 22);
  REQUIRE(wl.front().first == "conv1");
  REQUIRE(wl[7].first == "layer2.0.conv1");
  REQUIRE(wl[9].first == "layer2.0.downsample.0");
  REQUIRE(wl.back().first == "fc");
  REQUIRE(wl.back().second->kind() == WeightLayer::Kind::linear);
  REQUIRE(m.named_parameters().size() == 22 + 1 + 21 * 2);
  // 269722 of option-A ResNet20 plus the 1x1 downsample convs and their BNs
  REQUIRE(parameter_count(m) == 272474);

  // Same names and shapes as the reference's state (golden init/, which omits the counters).
  auto init = load_npy_dir(golden_dir() + "/init");
  REQUIRE(init.size() == sd.size() - 21);
  for (auto& [n, t] : init) {
    INFO(n);
    REQUIRE(shapes.count(n) == 1);
    REQUIRE(shapes[n] == t.shape());
  }
}

TEST_CASE("ResNet depths and invalid configurations", "[models]") {
  for (int depth : {20, 32, 44, 56, 110}) {
    ResNetCifar m(depth, 100, 1);
    REQUIRE(weight_layers(m).size() == size_t(depth - 2 + 2 + 2));  // + 2 downsample convs
    REQUIRE(m.fc->weight.shape() == Shape{100, 64});
    REQUIRE(m.conv1->weight.shape() == Shape{16, 1, 3, 3});
  }
  REQUIRE_THROWS_WITH(ResNetCifar(18), Catch::Contains("unsupported depth 18"));
  REQUIRE_THROWS_WITH(ResNetCifar(21), Catch::Contains("8, 20, 32, 44, 56, 110 or 164"));
  REQUIRE_THROWS_WITH(ResNetCifar(20, 0), Catch::Contains("class count"));
}

TEST_CASE("ResNet initialization follows the reference's recipe from a seed", "[models]") {
  ResNetCifar a(20, 10, 3, 42), b(20, 10, 3, 42), c(20, 10, 3, 43);
  auto sa = a.state_dict(), sb = b.state_dict(), sc = c.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    if (sa[i].second.dtype() != DType::f32) continue;
    REQUIRE(sa[i].second.to_vector<float>() == sb[i].second.to_vector<float>());
  }
  REQUIRE(a.conv1->weight.to_vector<float>() != c.conv1->weight.to_vector<float>());
  // conv: N(0, 2 / fan_out); the big layer3 convs have 36864 samples.
  REQUIRE(weight_layers(a)[20].first == "layer3.2.conv2");
  auto w = to_doubles(weight_layers(a)[20].second->weight);
  double mean = 0, var = 0;
  for (double x : w) mean += x;
  mean /= w.size();
  for (double x : w) var += (x - mean) * (x - mean);
  var /= w.size();
  REQUIRE(std::abs(mean) < 0.005);
  REQUIRE(var == Approx(2.0 / (64 * 9)).epsilon(0.03));
  // fc: U(-1/8, 1/8) for weight and bias
  auto fw = to_doubles(a.fc->weight), fb = to_doubles(a.fc->bias);
  double lo = 1, hi = -1;
  for (double x : fw) lo = std::min(lo, x), hi = std::max(hi, x);
  REQUIRE(lo >= -0.125);
  REQUIRE(hi <= 0.125);
  REQUIRE(hi - lo > 0.2);
  for (double x : fb) REQUIRE(std::abs(x) <= 0.125);
  REQUIRE(to_doubles(a.bn1->weight) == std::vector<double>(16, 1.0));
  REQUIRE(to_doubles(a.bn1->bias) == std::vector<double>(16, 0.0));
  REQUIRE(to_doubles(a.bn1->running_var) == std::vector<double>(16, 1.0));
  for (auto& [n, p] : a.named_parameters()) REQUIRE(p.requires_grad());
}

TEST_CASE("load_state_dict copies values and reports bad checkpoints", "[models]") {
  ResNetCifar m(20, 10, 3, 1);
  auto init = load_npy_dir(golden_dir() + "/init");
  m.load_state_dict(init);  // strict; num_batches_tracked may be absent
  REQUIRE(m.conv1->weight.to_vector<float>() == init["conv1.weight"].to_vector<float>());
  REQUIRE(m.fc->bias.to_vector<float>() == init["fc.bias"].to_vector<float>());
  REQUIRE(m.conv1->weight.requires_grad());
  REQUIRE(!m.conv1->weight.same_storage(init["conv1.weight"]));  // a copy, not an alias

  auto missing = init;
  missing.erase("layer3.1.bn2.running_var");
  REQUIRE_THROWS_WITH(m.load_state_dict(missing),
                      Catch::Contains("missing keys: layer3.1.bn2.running_var"));
  m.load_state_dict(missing, /*strict=*/false);
  auto extra = init;
  extra["module.conv1.weight"] = init["conv1.weight"];
  REQUIRE_THROWS_WITH(m.load_state_dict(extra), Catch::Contains("unexpected keys: module.conv1"));
  auto bad = init;
  bad["fc.weight"] = Tensor::zeros({100, 64});
  REQUIRE_THROWS_WITH(m.load_state_dict(bad, false),
                      Catch::Contains("'fc.weight' has shape [100, 64]") &&
                          Catch::Contains("[10, 64]"));
  REQUIRE_THROWS_WITH(ResNetCifar(32).load_state_dict(init), Catch::Contains("missing keys"));
}

TEST_CASE("Module save/load, modes, devices and factories", "[models]") {
  fs::path d = fs::temp_directory_path() / ("mq_test_models_" + std::to_string(::getpid()));
  fs::remove_all(d);
  ResNetCifar a(20, 10, 3, 5), b(20, 10, 3, 6);
  a.bn1->num_batches_tracked.data<int64_t>()[0] = 7;
  a.save(d.string(), "final.");
  REQUIRE(fs::exists(d / "final.layer2.0.downsample.1.running_mean.npy"));
  REQUIRE(fs::exists(d / "final.bn1.num_batches_tracked.npy"));
  b.load_state_dict(load_npy_dir(d.string(), "final."));
  auto sa = a.state_dict(), sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    REQUIRE(sa[i].first == sb[i].first);
    REQUIRE(compare(sb[i].second, sa[i].second, 0, 0).ok);
  }
  fs::remove_all(d);

  REQUIRE(a.is_training());
  a.eval();
  for (auto& [n, mod] : a.named_modules()) REQUIRE(!mod->is_training());
  a.train();
  REQUIRE(a.layer3->children()[1].second->is_training());

  a.to(Device::cpu());  // no-op on the CPU, keeps handles and requires_grad
  REQUIRE(a.conv1->weight.device() == Device::cpu());
  REQUIRE(a.conv1->weight.requires_grad());

  ResNetCifar q(20, 10, 3, 0, MarkedFactory());
  int marked = 0;
  for (auto& [name, w] : weight_layers(q))
    marked += dynamic_cast<MarkedConv*>(w) != nullptr || dynamic_cast<MarkedLinear*>(w) != nullptr;
  REQUIRE(marked == 22);
  REQUIRE(q.state_dict().size() == a.state_dict().size());
}

TEST_CASE("ResNet forward and backward produce logits and gradients", "[models][nn]") {
  ResNetCifar m(20, 10, 3, 3);
  Tensor x = randn({2, 3, 32, 32}, 9, DType::f32);
  Tensor y = Tensor::from_vector<int64_t>({3, 7}, {2});
  Tensor logits = m.forward(x);
  REQUIRE(logits.shape() == Shape{2, 10});
  REQUIRE(m.bn1->num_batches_tracked.data<int64_t>()[0] == 1);
  cross_entropy(logits, y).backward();
  for (auto& [n, p] : m.named_parameters()) {
    INFO(n);
    REQUIRE(p.grad().defined());
  }
  m.zero_grad();
  REQUIRE(!m.fc->weight.grad().defined());
  // eval mode uses (and does not move) the running statistics
  m.eval();
  auto rm = m.bn1->running_mean.to_vector<float>();
  Tensor e1 = m.forward(x), e2 = m.forward(x);
  REQUIRE(m.bn1->running_mean.to_vector<float>() == rm);
  REQUIRE(e1.to_vector<float>() == e2.to_vector<float>());
  REQUIRE(m.bn1->num_batches_tracked.data<int64_t>()[0] == 1);
}

TEST_CASE("Conv2d with groups and a bias: PyTorch's names and shapes, its forward and init",
          "[models]") {
  Conv2d conv(4, 6, 3, 1, 1, /*groups=*/2, /*bias=*/true);
  const NamedTensors state = conv.state_dict();
  REQUIRE(names_of(state) == std::vector<std::string>{"weight", "bias"});
  CHECK(conv.weight.shape() == Shape{6, 2, 3, 3});
  CHECK(conv.bias.shape() == Shape{6});
  InitRng rng(7);
  conv.reset_parameters(rng);
  // bias within PyTorch's bound 1/sqrt(fan_in), fan_in = 4 / 2 * 3 * 3
  const float bound = 1.0f / std::sqrt(18.0f);
  for (float b : conv.bias.to_vector<float>()) CHECK(std::fabs(b) <= bound);
  Tensor x = randn({2, 4, 5, 5}, 3, DType::f32);
  Tensor want = conv2d(x, conv.weight, conv.bias, {1, 1, 2});
  CHECK(conv.forward(x).to_vector<float>() == want.to_vector<float>());
  // without a bias: no "bias" entry, as the ResNet convs
  Conv2d plain(4, 6, 3);
  CHECK(names_of(plain.state_dict()) == std::vector<std::string>{"weight"});
  REQUIRE_THROWS_WITH(Conv2d(4, 6, 3, 1, 1, 3), Catch::Contains("groups must divide"));
}
