#pragma once
// Define-by-run autograd. Each differentiable op records a Node on its output: the inputs it
// differentiates with respect to, and a backward function (written next to the op's forward)
// that maps the output's gradient to one gradient per input (undefined where none flows).
// backward() walks an iterative topological order, accumulates leaf gradients into .grad and
// releases the graph unless asked to retain it.
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mq {

// Where an input's gradient goes: the node that produced it (an intermediate), or the leaf
// tensor itself. An edge never holds an intermediate's data: the graph keeps what the backward
// functions saved and nothing more, so an activation no backward needs is freed as soon as the
// forward drops it.
struct Edge {
  std::shared_ptr<Node> fn;           // intermediate input: its grad_fn
  std::shared_ptr<TensorImpl> leaf;   // leaf input that requires grad (a parameter)
  Shape shape;                        // the input's shape, to check the gradient
  bool defined() const { return fn || leaf; }
};

struct Node {
  std::string name;
  std::vector<Edge> inputs;  // one per op input; empty edges take no gradient
  std::function<std::vector<Tensor>(const Tensor& grad_out)> backward;
  // The output tensor, once retain_grad() was called on it: its gradient is kept in .grad.
  std::weak_ptr<TensorImpl> retained;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Releases the upstream chain iteratively: a graph of 100,000s of ops dropped without a
  // backward would otherwise destroy one node inside the next and overflow the stack.
  ~Node();
};

// True when an op on these inputs must record history.
bool needs_grad(std::initializer_list<Tensor> inputs);

// Attaches history to `out` if any input requires grad and grad mode is on. The backward
// function must not capture `out` itself (that would be a reference cycle); capture
// out.detach() instead. Returns `out` for chaining.
Tensor record(Tensor out, const char* name, std::initializer_list<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor& grad_out)> backward);

// Runs backward from `root` with seed gradient `grad` (defaults to ones for a scalar).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

// Gradients of `outputs` with respect to `inputs` without touching .grad (used by tests).
void accumulate_grad(TensorImpl& impl, const Tensor& g);

}  // namespace mq
