#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/ops.h"

namespace mq {

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!grad_mode_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor&)> backward) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.assign(inputs.begin(), inputs.end());
  node->backward = std::move(backward);
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

void accumulate_grad(TensorImpl& impl, const Tensor& g) {
  if (!impl.grad) {
    // Own the buffer: the incoming gradient may alias another tensor's storage.
    impl.grad = g.detach().clone().impl_ptr();
  } else {
    Tensor acc(impl.grad);
    add_inplace(acc, g);
  }
}

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  MQ_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = grad_in;
  if (!seed.defined()) {
    MQ_CHECK(root.numel() == 1,
             "backward() on a non-scalar {} needs an explicit gradient", root.describe());
    seed = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  }
  check_same_shape(seed, root, "backward");
  NoGradGuard no_grad;  // gradient arithmetic records no history

  // Iterative DFS post-order over tensors that carry history -> topological order.
  std::vector<TensorImpl*> order;
  std::unordered_set<TensorImpl*> visited;
  std::vector<std::pair<TensorImpl*, size_t>> stack;
  stack.emplace_back(&root.impl(), 0);
  visited.insert(&root.impl());
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    Node* node = impl->grad_fn.get();
    if (node && next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.requires_grad() && visited.insert(&in.impl()).second)
        stack.emplace_back(&in.impl(), 0);
      continue;
    }
    order.push_back(impl);
    stack.pop_back();
  }

  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[&root.impl()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* impl = *it;
    auto found = grads.find(impl);
    if (found == grads.end()) continue;
    Tensor g = std::move(found->second);
    grads.erase(found);
    if (!impl->grad_fn) {
      accumulate_grad(*impl, g);
      continue;
    }
    if (impl->retains_grad) accumulate_grad(*impl, g);
    Node& node = *impl->grad_fn;
    std::vector<Tensor> in_grads = node.backward(g);
    MQ_CHECK(in_grads.size() == node.inputs.size(),
             "internal: backward of '{}' returned {} gradients for {} inputs", node.name,
             in_grads.size(), node.inputs.size());
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Tensor& in = node.inputs[i];
      if (!in.defined() || !in.requires_grad() || !in_grads[i].defined()) continue;
      MQ_CHECK(in_grads[i].shape() == in.shape(),
               "internal: backward of '{}' gave gradient {} for input {}", node.name,
               in_grads[i].describe(), in.describe());
      auto [slot, inserted] = grads.try_emplace(&in.impl(), in_grads[i]);
      if (!inserted) slot->second = add(slot->second, in_grads[i]);
    }
  }
  if (!retain_graph) {
    // Free saved tensors and upstream handles; the node stays so the tensor keeps its
    // non-leaf identity, and a second backward through it is reported.
    for (TensorImpl* impl : order) {
      if (!impl->grad_fn) continue;
      Node& node = *impl->grad_fn;
      std::string name = node.name;
      node.inputs.clear();
      node.backward = [name](const Tensor&) -> std::vector<Tensor> {
        fail("backward through '{}' a second time: its graph was released; pass "
             "retain_graph=true to the first backward()", name);
      };
    }
  }
}

}  // namespace mq
