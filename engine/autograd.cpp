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

Node::~Node() {
  std::vector<std::shared_ptr<Node>> pending;
  for (Edge& e : inputs)
    if (e.fn) pending.push_back(std::move(e.fn));
  while (!pending.empty()) {
    std::shared_ptr<Node> node = std::move(pending.back());
    pending.pop_back();
    // The last owner: take its edges before it goes, so its destructor finds none.
    if (node.use_count() == 1)
      for (Edge& e : node->inputs)
        if (e.fn) pending.push_back(std::move(e.fn));
  }
}

Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor&)> backward) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    Edge e;
    if (in.defined() && in.requires_grad()) {
      e.shape = in.shape();
      if (in.grad_fn()) e.fn = in.grad_fn();
      else e.leaf = in.impl_ptr();
    }
    node->inputs.push_back(std::move(e));
  }
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

  if (!root.grad_fn()) {  // a leaf
    accumulate_grad(root.impl(), seed);
    return;
  }

  // Iterative DFS post-order over the nodes -> topological order.
  std::vector<Node*> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<Node*, size_t>> stack;
  stack.emplace_back(root.grad_fn().get(), 0);
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      Node* in = node->inputs[next++].fn.get();
      if (in && visited.insert(in).second) stack.emplace_back(in, 0);
      continue;
    }
    order.push_back(node);
    stack.pop_back();
  }

  // Gradients flowing into each node's output, and into each leaf, summed in arrival order.
  std::unordered_map<Node*, Tensor> grads;
  std::unordered_map<TensorImpl*, Tensor> leaf_grads;
  std::vector<TensorImpl*> leaves;  // in order of first arrival
  grads[root.grad_fn().get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& node = **it;
    auto found = grads.find(&node);
    if (found == grads.end()) continue;
    Tensor g = std::move(found->second);
    grads.erase(found);
    if (auto kept = node.retained.lock()) accumulate_grad(*kept, g);
    std::vector<Tensor> in_grads = node.backward(g);
    MQ_CHECK(in_grads.size() == node.inputs.size(),
             "internal: backward of '{}' returned {} gradients for {} inputs", node.name,
             in_grads.size(), node.inputs.size());
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Edge& in = node.inputs[i];
      if (!in.defined() || !in_grads[i].defined()) continue;
      if (in.leaf && !in.leaf->requires_grad) continue;
      MQ_CHECK(in_grads[i].shape() == in.shape,
               "internal: backward of '{}' gave gradient {} for input of shape {}", node.name,
               in_grads[i].describe(), shape_str(in.shape));
      if (in.fn) {
        auto [slot, inserted] = grads.try_emplace(in.fn.get(), in_grads[i]);
        if (!inserted) slot->second = add(slot->second, in_grads[i]);
      } else {
        auto [slot, inserted] = leaf_grads.try_emplace(in.leaf.get(), in_grads[i]);
        if (inserted) leaves.push_back(in.leaf.get());
        else slot->second = add(slot->second, in_grads[i]);
      }
    }
  }
  for (TensorImpl* leaf : leaves) accumulate_grad(*leaf, leaf_grads[leaf]);
  if (!retain_graph) {
    // Free saved tensors and upstream edges; the node stays so the tensor keeps its
    // non-leaf identity, and a second backward through it is reported.
    for (Node* node : order) {
      std::string name = node->name;
      node->inputs.clear();
      node->backward = [name](const Tensor&) -> std::vector<Tensor> {
        fail("backward through '{}' a second time: its graph was released; pass "
             "retain_graph=true to the first backward()", name);
      };
    }
  }
}

}  // namespace mq
