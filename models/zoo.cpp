#include "models/zoo.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "kernels/base/text.h"
#include "models/mobilenet_v2.h"
#include "models/resnet_cifar.h"
#include "models/vgg_small.h"

namespace mq {
namespace {

struct Entry {
  std::string summary;
  ModelBuilder build;
};

// mq's own models, registered on first use of the zoo.
void add_builtin(std::map<std::string, Entry>& zoo) {
  for (int depth : ResNetCifar::kValidDepths)
    zoo["resnet" + std::to_string(depth)] = {
        depth == 164 ? std::string("ResNet-164 for CIFAR (bottleneck blocks, as the reference's "
                                   "resnet164_cifar)")
                     : fmt::format("ResNet-{} for CIFAR (basic blocks, 16-32-64 channels){}",
                                   depth, depth == 8 ? ", for quick tests" : ""),
        [depth](const ModelArgs& a) {
          return std::make_unique<ResNetCifar>(depth, a.classes, a.in_channels, 0, *a.layers);
        }};
  zoo["vgg-small"] = {"VGG-Small for CIFAR (2x128C3, pool, 2x256C3, pool, 2x512C3, pool, fc)",
                      [](const ModelArgs& a) {
                        return std::make_unique<VggSmall>(a.classes, a.in_channels, a.height,
                                                          a.width, *a.layers);
                      }};
  zoo["mobilenetv2"] = {"MobileNetV2 for 32x32 inputs (inverted residuals, depthwise 3x3, ReLU6)",
                        [](const ModelArgs& a) {
                          return std::make_unique<MobileNetV2>(a.classes, a.in_channels,
                                                               *a.layers);
                        }};
}

std::map<std::string, Entry>& zoo() {
  static std::map<std::string, Entry> z = [] {
    std::map<std::string, Entry> m;
    add_builtin(m);
    return m;
  }();
  return z;
}
std::mutex& zoo_mutex() {
  static std::mutex m;
  return m;
}

std::string list_names() {
  std::vector<std::string> names;
  for (const auto& [name, e] : zoo()) names.push_back(name);
  // resnet8 before resnet20: digits by value
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    auto split = [](const std::string& s) {
      size_t i = s.find_first_of("0123456789");
      if (i == std::string::npos) return std::pair<std::string, long>{s, -1};
      size_t j = s.find_first_not_of("0123456789", i);
      if (j != std::string::npos) return std::pair<std::string, long>{s, -1};
      return std::pair<std::string, long>{s.substr(0, i), std::stol(s.substr(i))};
    };
    return split(a) < split(b);
  });
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

const Entry& find(const std::string& name) {
  auto it = zoo().find(ascii_lower(name));
  if (it == zoo().end())
    fail("unknown model '{}': choose one of {}", name, list_names());
  return it->second;
}

}  // namespace

void register_model(const std::string& name, const std::string& summary, ModelBuilder build) {
  MQ_CHECK(!name.empty() && name.size() <= 64 &&
               std::all_of(name.begin(), name.end(),
                           [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                                    c == '_';
                           }),
           "register_model: '{}' is not a model name (lowercase letters, digits, '-', '_'; at "
           "most 64 characters)", name);
  MQ_CHECK(build, "register_model('{}'): no builder", name);
  std::lock_guard lock(zoo_mutex());
  MQ_CHECK(!zoo().count(name), "register_model: '{}' is already a model of the zoo", name);
  zoo()[name] = {summary, std::move(build)};
}

std::unique_ptr<Model> make_model(const std::string& name, const ModelArgs& args, uint64_t seed) {
  ModelBuilder build;
  {
    std::lock_guard lock(zoo_mutex());
    build = find(name).build;
  }
  MQ_CHECK(args.classes > 0, "model {}: the class count must be positive, got {}", name,
           args.classes);
  MQ_CHECK(args.in_channels > 0, "model {}: the input channel count must be positive, got {}",
           name, args.in_channels);
  MQ_CHECK(args.layers, "model {}: no layer factory", name);
  std::unique_ptr<Model> model;
  try {
    model = build(args);
  } catch (const Error& e) {
    fail("model {}: {}", name, e.what());
  }
  MQ_CHECK(model, "model {}: its builder returned no model", name);
  model->reset_parameters(seed);
  return model;
}

bool has_model(const std::string& name) {
  std::lock_guard lock(zoo_mutex());
  return zoo().count(ascii_lower(name)) > 0;
}

std::vector<std::string> model_names() {
  std::lock_guard lock(zoo_mutex());
  std::vector<std::string> names;
  for (const auto& [name, e] : zoo()) names.push_back(name);
  return names;
}

std::string model_summary(const std::string& name) {
  std::lock_guard lock(zoo_mutex());
  return find(name).summary;
}

std::string model_list() {
  std::lock_guard lock(zoo_mutex());
  return list_names();
}

}  // namespace mq
