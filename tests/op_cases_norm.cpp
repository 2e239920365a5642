// Harness cases of batch_norm, training and eval, affine or not: y and the running statistics
// (PyTorch's semantics: biased variance to normalize, unbiased n/(n-1) to update running_var).
#include <cmath>

#include "op_harness.h"

namespace mq::test {

namespace {

struct BnCase {
  Shape shape;
  bool training, affine;
  bool x_grad = true;
  double eps = 1e-5;
};

// Inputs: x, running mean, running var, then weight and bias when affine. The forward updates
// copies of the running statistics and returns them after y.
OpCase& add_bn(OpRegistry& r, const BnCase& k, Input x, Input rm, Input rv, uint64_t wb_seed) {
  OpCase& c = r.add("batch_norm", fmt::format("{} {}{}{}{}", shape_str(k.shape),
                                              k.training ? "train" : "eval",
                                              k.affine ? " affine" : "",
                                              k.x_grad ? "" : " (params grad only)",
                                              k.eps != 1e-5 ? fmt::format(" eps {}", k.eps) : ""));
  const int64_t ch = k.shape[1];
  std::vector<Input> in{x.grad(k.x_grad), rm, rv};
  if (k.affine) {
    in.push_back(normal({ch}, wb_seed).grad());
    in.push_back(normal({ch}, wb_seed + 1).grad());
  }
  const BatchNormParams p{k.training, 0.1, k.eps};
  const bool affine = k.affine;
  c.build = from_inputs(in, [p, affine](const std::vector<Tensor>& in) {
    Tensor rm = in[1].clone(), rv = in[2].clone();
    Tensor y = batch_norm(in[0], affine ? in[3] : Tensor(), affine ? in[4] : Tensor(), rm, rv, p);
    return std::vector<Tensor>{y, rm, rv};
  });
  c.reference = [p, affine](const HostTensors& in, DType) {
    const HostTensor& x = in[0];
    const int64_t n = x.shape[0], ch = x.shape[1], hw = x.numel() / (n * ch);
    HostTensor y{x.shape, std::vector<double>(x.v.size())}, rm = in[1], rv = in[2];
    for (int64_t ci = 0; ci < ch; ++ci) {
      auto at = [&](int64_t ni, int64_t j) { return (ni * ch + ci) * hw + j; };
      double mean = in[1][ci], var = in[2][ci];
      if (p.training) {
        double s = 0, ss = 0;
        for (int64_t ni = 0; ni < n; ++ni)
          for (int64_t j = 0; j < hw; ++j) s += x[at(ni, j)];
        mean = s / (n * hw);
        for (int64_t ni = 0; ni < n; ++ni)
          for (int64_t j = 0; j < hw; ++j) ss += (x[at(ni, j)] - mean) * (x[at(ni, j)] - mean);
        var = ss / (n * hw);
        rm.v[ci] = (1 - p.momentum) * in[1][ci] + p.momentum * mean;
        rv.v[ci] = (1 - p.momentum) * in[2][ci] + p.momentum * ss / (n * hw - 1);
      }
      for (int64_t ni = 0; ni < n; ++ni)
        for (int64_t j = 0; j < hw; ++j) {
          double t = (x[at(ni, j)] - mean) / std::sqrt(var + p.eps);
          y.v[at(ni, j)] = affine ? t * in[3][ci] + in[4][ci] : t;
        }
    }
    if (p.training) return std::vector<Expected>{y, rm, rv};
    // Eval mode leaves the running statistics exactly as they were.
    return std::vector<Expected>{y, Expected(rm, Tol{0, 0}), Expected(rv, Tol{0, 0})};
  };
  if (k.shape.size() == 2 || shape_numel(k.shape) <= 72) c.gradcheck = kGradCheckTol;
  return c;
}

}  // namespace

void add_norm_cases(OpRegistry& r) {
  // Training with a nonzero mean; planes of several sizes, [N, C] input, a batch of 1.
  for (Shape s : {Shape{4, 3, 5, 6}, Shape{8, 5}, Shape{1, 2, 3, 3}})
    add_bn(r, {s, true, true}, normal(s, 71, 2.0, 0.7), normal({s[1]}, 74),
           uniform_in({s[1]}, 75, 0.5, 2.0), 72);
  // Eval with given statistics and a larger eps, affine or not.
  for (bool affine : {true, false})
    add_bn(r, {{3, 2, 4, 4}, false, affine, true, 1e-3}, normal({3, 2, 4, 4}, 81),
           values({0.5, -1.0}, {2}), values({2.0, 0.25}, {2}), 82);
  // Small enough for central differences: every parameter combination in both modes.
  for (Shape s : {Shape{3, 2, 3, 4}, Shape{5, 3}})
    for (bool training : {true, false}) {
      const int64_t ch = s[1];
      Input rm = normal({ch}, 91), rv = uniform_in({ch}, 92, 0.5, 1.5);
      add_bn(r, {s, training, true}, normal(s, 93, 1.5), rm, rv, 94);
      add_bn(r, {s, training, false}, normal(s, 96), rm, rv, 0);
      add_bn(r, {s, training, true, false}, normal(s, 97), rm, rv, 98);
    }
  // CUDA block sizes: many planes, wide planes, [N, C], a large mean (the variance's
  // cancellation); running variance |N(0, 1)| + 0.5.
  for (Shape s : {Shape{4, 3, 5, 5}, Shape{16, 16, 8, 8}, Shape{8, 6}, Shape{2, 64, 4, 4}})
    for (bool affine : {true, false})
      for (bool training : {true, false}) {
        Input rv = normal({s[1]}, 62);
        rv.values = [gen = rv.values] {
          std::vector<double> v = gen();
          for (double& x : v) x = std::fabs(x) + 0.5;
          return v;
        };
        OpCase& c = add_bn(r, {s, training, affine}, normal(s, 63, 2.0, 3.0),
                           normal({s[1]}, 61, 0.1), rv, 64);
        c.gradcheck.reset();  // covered by the small shapes above
      }
  // perf: ResNet20's stage-1 batch norm at batch 128, training.
  const Shape big{128, 16, 32, 32};
  OpCase& perf = add_bn(r, {big, true, true}, normal(big, 1), normal({16}, 2),
                        uniform_in({16}, 3, 0.5, 2.0), 4);
  perf.reference = nullptr;
  perf.cuda = false;
  perf.gradcheck.reset();
  perf.perf = true;
  perf.perf_bytes = 3.0 * 4 * shape_numel(big);
}

}  // namespace mq::test
