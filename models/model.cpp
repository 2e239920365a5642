#include "models/model.h"

namespace mq {

void Model::reset_parameters(uint64_t seed) {
  InitRng rng(seed);
  for (auto& [name, m] : named_modules()) {
    if (auto* w = dynamic_cast<WeightLayer*>(m)) w->reset_parameters(rng);
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bn->reset_parameters();
  }
}

// named_modules() is pre-order in registration order; a weight layer's own tensors come before
// its (absent) children, so this is state_dict order.
std::vector<std::pair<std::string, WeightLayer*>> weight_layers(Module& root) {
  std::vector<std::pair<std::string, WeightLayer*>> out;
  for (auto& [name, m] : root.named_modules())
    if (auto* w = dynamic_cast<WeightLayer*>(m)) out.emplace_back(name, w);
  return out;
}

}  // namespace mq
