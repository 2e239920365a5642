#include "models/module.h"

#include <set>

#include "engine/io/npy.h"

namespace mq {

void Module::train(bool on) {
  for (auto& [name, m] : named_modules()) m->training_ = on;
}

void Module::register_parameter(const std::string& name, Tensor* t) {
  MQ_CHECK(t && t->defined(), "register_parameter('{}'): undefined tensor", name);
  MQ_CHECK(is_floating(t->dtype()), "register_parameter('{}'): parameters must be floating, got {}",
           name, t->describe());
  t->set_requires_grad(true);
  params_.push_back({name, t});
}

void Module::register_buffer(const std::string& name, Tensor* t, bool optional_on_load,
                             bool host_only) {
  MQ_CHECK(t && t->defined(), "register_buffer('{}'): undefined tensor", name);
  buffers_.push_back({name, t, optional_on_load, host_only});
}

void Module::add_child(const std::string& name, std::unique_ptr<Module> child) {
  MQ_CHECK(child != nullptr, "register_module('{}'): null module", name);
  MQ_CHECK(!child->parent_, "register_module('{}'): the module is already registered as '{}'",
           name, child->path());
  child->parent_ = this;
  child->local_name_ = name;
  child_view_.emplace_back(name, child.get());
  owned_.push_back(std::move(child));
}

std::string Module::path() const {
  std::string out = local_name_;
  for (const Module* m = parent_; m && m->parent_; m = m->parent_) out = m->local_name_ + "." + out;
  return out;
}

void Module::collect_slots(const std::string& prefix,
                           std::vector<std::pair<std::string, Slot>>& out, bool params,
                           bool buffers) const {
  if (params)
    for (const auto& s : params_) out.emplace_back(prefix + s.name, s);
  if (buffers)
    for (const auto& s : buffers_) out.emplace_back(prefix + s.name, s);
  for (const auto& [name, child] : child_view_)
    child->collect_slots(prefix + name + ".", out, params, buffers);
}

void Module::collect(const std::string& prefix, bool params, bool buffers,
                     NamedTensors& out) const {
  std::vector<std::pair<std::string, Slot>> slots;
  collect_slots(prefix, slots, params, buffers);
  for (auto& [name, s] : slots) out.emplace_back(name, *s.tensor);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  // Iterative pre-order walk: (dotted name, module).
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [name, m] = stack.back();
    stack.pop_back();
    out.emplace_back(name, m);
    for (auto it = m->child_view_.rbegin(); it != m->child_view_.rend(); ++it)
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first, it->second);
  }
  return out;
}

NamedTensors Module::state_dict() const {
  // PyTorch order: a module's parameters, then its buffers, then each child's state.
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

void Module::load_state_dict(const TensorMap& state, bool strict) {
  std::vector<std::pair<std::string, Slot>> slots;
  collect_slots("", slots, true, true);
  std::vector<std::string> missing;
  std::set<std::string> known;
  NoGradGuard no_grad;
  for (auto& [name, s] : slots) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) {
      if (!s.optional_on_load) missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    Tensor& dst = *s.tensor;
    MQ_CHECK(src.shape() == dst.shape(),
             "load_state_dict: '{}' has shape {} in the checkpoint but {} in the model "
             "(wrong depth/class count?)", name, shape_str(src.shape()), shape_str(dst.shape()));
    Tensor value = src.dtype() == dst.dtype() ? src : src.to(dst.dtype());
    MQ_CHECK(is_floating(src.dtype()) == is_floating(dst.dtype()),
             "load_state_dict: '{}' is {} in the checkpoint but {} in the model", name,
             dtype_name(src.dtype()), dtype_name(dst.dtype()));
    dst.copy_(value);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : state)
    if (!known.count(name)) unexpected.push_back(name);
  if (!strict) return;
  auto join = [](const std::vector<std::string>& v) {
    std::string r;
    for (size_t i = 0; i < v.size() && i < 8; ++i) r += (i ? ", " : "") + v[i];
    if (v.size() > 8) r += fmt::format(", ... ({} in all)", v.size());
    return r;
  };
  MQ_CHECK(missing.empty(), "load_state_dict: missing keys: {} (checkpoint of another model?)",
           join(missing));
  MQ_CHECK(unexpected.empty(),
           "load_state_dict: unexpected keys: {} (checkpoint of another model? pass strict=false "
           "to ignore)", join(unexpected));
}

void Module::save(const std::string& dir, const std::string& prefix) const {
  TensorMap m;
  for (auto& [name, t] : state_dict()) m.emplace(name, t);
  save_npy_dir(dir, m, prefix);
}

void Module::to(Device device) {
  std::vector<std::pair<std::string, Slot>> slots;
  collect_slots("", slots, true, true);
  for (auto& [name, s] : slots) {
    if (s.host_only) continue;
    bool rg = s.tensor->requires_grad();
    Tensor moved = s.tensor->detach().to(device);
    if (moved.same_storage(*s.tensor)) continue;  // already there
    *s.tensor = moved;
    if (rg) s.tensor->set_requires_grad(true);
  }
}

void Module::to(DType dtype) {
  MQ_CHECK(is_floating(dtype), "Module::to: {} is not a floating dtype", dtype_name(dtype));
  std::vector<std::pair<std::string, Slot>> slots;
  collect_slots("", slots, true, true);
  for (auto& [name, s] : slots) {
    if (!is_floating(s.tensor->dtype()) || s.tensor->dtype() == dtype) continue;
    bool rg = s.tensor->requires_grad();
    Device dev = s.tensor->device();
    *s.tensor = s.tensor->detach().to(dtype).to(dev);
    if (rg) s.tensor->set_requires_grad(true);
  }
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) {
    Tensor h = t;
    h.zero_grad();
  }
}

}  // namespace mq
