#pragma once
// Module: named parameters, buffers and child modules with PyTorch state_dict names
// ("layer2.0.downsample.0.weight"), in PyTorch's order (own parameters, own buffers, then
// children in registration order). Layers keep their tensors as members and register their
// addresses, so a Module is neither copyable nor movable (hold models by unique_ptr).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace mq {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using TensorMap = std::map<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- mode ----
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- walking ----
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Module*>> named_modules();  // pre-order, self first ("")
  const std::vector<std::pair<std::string, Module*>>& children() const { return child_view_; }
  // This module's state_dict name within the tree that holds it ("layer2.0.conv1"); "" for the
  // root. Layers name themselves with it in their errors.
  std::string path() const;

  // ---- state ----
  // Parameters and persistent buffers, PyTorch order. The tensors share storage with the module.
  NamedTensors state_dict() const;
  // Copies values in (keeping this module's devices). Errors on shape/dtype mismatches; with
  // `strict`, also on missing and unexpected keys (optional buffers such as BN's
  // num_batches_tracked may be absent).
  void load_state_dict(const TensorMap& state, bool strict = true);
  // `<dir>/<prefix><name>.npy` for every state_dict entry.
  void save(const std::string& dir, const std::string& prefix = "") const;

  // Moves every tensor to `device` (gradients are dropped). Optimizers hold tensor handles:
  // build them after moving the model.
  void to(Device device);
  // Converts every floating tensor to `dtype` (f32 or f64; f64 replays golden cases exactly).
  void to(DType dtype);
  void zero_grad();  // resets every parameter's .grad (PyTorch set_to_none)

 protected:
  // Registration, in PyTorch's order. The pointers must stay valid for the module's lifetime
  // (members of the registering module).
  void register_parameter(const std::string& name, Tensor* t);
  // `optional_on_load`: absent keys are skipped by load_state_dict (num_batches_tracked).
  // `host_only`: stays on the CPU when the module moves (small counters).
  void register_buffer(const std::string& name, Tensor* t, bool optional_on_load = false,
                       bool host_only = false);
  template <class M>
  M* register_module(const std::string& name, std::unique_ptr<M> child) {
    M* raw = child.get();
    add_child(name, std::move(child));
    return raw;
  }

 private:
  struct Slot {
    std::string name;
    Tensor* tensor;
    bool optional_on_load = false;
    bool host_only = false;
  };
  void add_child(const std::string& name, std::unique_ptr<Module> child);
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;
  void collect_slots(const std::string& prefix, std::vector<std::pair<std::string, Slot>>& out,
                     bool params, bool buffers) const;

  bool training_ = true;
  const Module* parent_ = nullptr;  // set when registered as a child
  std::string local_name_;
  std::vector<Slot> params_;
  std::vector<Slot> buffers_;
  std::vector<std::unique_ptr<Module>> owned_;
  std::vector<std::pair<std::string, Module*>> child_view_;
};

// Generic container whose children are named "0", "1", ... (nn.Sequential's names).
class Sequential : public Module {
 public:
  template <class M>
  M* push(std::unique_ptr<M> m) {
    return register_module(std::to_string(size_++), std::move(m));
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

}  // namespace mq
