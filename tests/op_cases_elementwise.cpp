// Harness cases of the elementwise ops (add ... sign, stop_gradient, the in-place add and axpy)
// and of the reductions (sum, mean, max_abs).
#include <algorithm>
#include <cmath>

#include "op_harness.h"

namespace mq::test {

namespace {

using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using Formula = std::function<double(double, double)>;

// Scalar sizes, odd sizes, a 4-d tensor, a vectorized size and one with a tail of 3.
const std::vector<Shape> kShapes = {Shape{1},          Shape{7},     Shape{3, 5}, Shape{3, 4},
                                    Shape{2, 3, 4, 5}, Shape{40000}, Shape{(1 << 20) + 3}};
constexpr int64_t kGradcheckMaxNumel = 120;  // central differences cost numel^2
constexpr int64_t kPerfNumel = (1 << 20) + 3;

// The reference of a one- or two-input elementwise op.
Reference pointwise(Formula f) {
  return [f](const HostTensors& in, DType) {
    HostTensor y{in[0].shape, std::vector<double>(in[0].v.size())};
    for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = f(in[0][i], in.size() > 1 ? in[1][i] : 0.0);
    return std::vector<Expected>{y};
  };
}

void add_pointwise(OpRegistry& r, const std::string& op, const std::string& what, int arity,
                   uint64_t seed, Fn fn, Formula f, bool differentiable = true) {
  for (const Shape& s : kShapes) {
    std::vector<Input> in{normal(s, seed).grad(differentiable)};
    if (arity == 2) in.push_back(normal(s, seed + 1).grad(differentiable));
    OpCase& c = r.add(op, what + " " + shape_str(s));
    c.build = from_inputs(in, fn);
    c.reference = pointwise(f);
    if (differentiable && shape_numel(s) <= kGradcheckMaxNumel) c.gradcheck = kGradCheckTol;
    if (shape_numel(s) == kPerfNumel) {
      c.perf = true;
      c.perf_bytes = 4.0 * shape_numel(s) * (arity + 1);
    }
  }
}

Fn unary(Tensor (*op)(const Tensor&)) {
  return [op](const std::vector<Tensor>& in) { return std::vector<Tensor>{op(in[0])}; };
}
Fn binary(Tensor (*op)(const Tensor&, const Tensor&)) {
  return [op](const std::vector<Tensor>& in) { return std::vector<Tensor>{op(in[0], in[1])}; };
}

}  // namespace

void add_elementwise_cases(OpRegistry& r) {
  add_pointwise(r, "add", "a + b", 2, 1, binary(add), [](double a, double b) { return a + b; });
  add_pointwise(r, "sub", "a - b", 2, 1, binary(sub), [](double a, double b) { return a - b; });
  add_pointwise(r, "mul", "a * b", 2, 1, binary(mul), [](double a, double b) { return a * b; });
  // The same input twice: both gradient contributions accumulate.
  add_pointwise(
      r, "mul", "x * x", 1, 9,
      [](const std::vector<Tensor>& in) { return std::vector<Tensor>{mul(in[0], in[0])}; },
      [](double a, double) { return a * a; });
  for (double s : {0.5, 0.75, 2.0})
    add_pointwise(
        r, "add_scalar", fmt::format("x + {}", s), 1, 3,
        [s](const std::vector<Tensor>& in) { return std::vector<Tensor>{add_scalar(in[0], s)}; },
        [s](double a, double) { return a + s; });
  for (double s : {-3.0, -1.5})
    add_pointwise(
        r, "mul_scalar", fmt::format("{} x", s), 1, 3,
        [s](const std::vector<Tensor>& in) { return std::vector<Tensor>{mul_scalar(in[0], s)}; },
        [s](double a, double) { return s * a; });
  add_pointwise(r, "neg", "-x", 1, 4, unary(neg), [](double a, double) { return -a; });
  add_pointwise(r, "relu", "relu x", 1, 5, unary(relu), [](double a, double) { return a > 0 ? a : 0.0; });
  add_pointwise(r, "tanh", "tanh x", 1, 6, unary(tanh), [](double a, double) { return std::tanh(a); });
  add_pointwise(r, "abs", "|x|", 1, 7, unary(abs), [](double a, double) { return std::fabs(a); });
  auto sign_of = [](double a, double) { return double((a > 0) - (a < 0)); };
  add_pointwise(r, "sign", "sign x", 1, 8, unary(sign), sign_of);
  // At zero: sign(0) = 0 and relu's gradient there agree on both devices (no finite
  // differences across the kink).
  for (auto [op, fn, f] : {std::tuple{"sign", unary(sign), Formula(sign_of)},
                           std::tuple{"relu", unary(relu), Formula([](double, double) { return 0.0; })}}) {
    OpCase& c = r.add(op, "zeros [6]");
    c.build = from_inputs({values(std::vector<double>(6, 0.0), {6}).grad()}, fn);
    c.reference = pointwise(f);
  }
  // hardtanh: both bounds inside N(0, 1)'s range; ReLU6 on inputs scaled to reach 6.
  add_pointwise(
      r, "hardtanh", "hardtanh(x, -0.5, 1)", 1, 11,
      [](const std::vector<Tensor>& in) { return std::vector<Tensor>{hardtanh(in[0], -0.5, 1.0)}; },
      [](double a, double) { return std::clamp(a, -0.5, 1.0); });
  add_pointwise(
      r, "hardtanh", "relu6(4x)", 1, 12,
      [](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{relu6(mul_scalar(in[0], 4.0))};
      },
      [](double a, double) { return std::clamp(4 * a, 0.0, 6.0); });
  // At the bounds exactly the gradient is zero (PyTorch's Hardtanh, not torch.clamp).
  struct Bounds {
    double lo, hi;
    std::vector<double> v;
  };
  for (const Bounds& b : {Bounds{-0.5, 1.0, {-2, -0.5, 0, 1, 3, 0.25}},
                          Bounds{0.0, 6.0, {-1, 0, 3, 6, 7, 5.5}}}) {
    const double lo = b.lo, hi = b.hi;
    const std::vector<double>& v = b.v;
    OpCase& c = r.add("hardtanh", fmt::format("bounds [{}, {}] [6]", lo, hi));
    c.build = from_inputs({values(v, {6}).grad()}, [lo, hi](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{hardtanh(in[0], lo, hi)};
    });
    c.reference = pointwise([lo, hi](double a, double) { return std::clamp(a, lo, hi); });
    c.grad_reference = [lo, hi](const HostTensors& in, const HostTensors& gy, DType) {
      HostTensor g{in[0].shape, std::vector<double>(6)};
      for (int i = 0; i < 6; ++i) g.v[i] = in[0][i] > lo && in[0][i] < hi ? gy[0][i] : 0.0;
      return std::vector<Expected>{g};
    };
  }
  add_pointwise(r, "stop_gradient", "sg(x)", 1, 10, unary(stop_gradient),
                [](double a, double) { return a; }, /*differentiable=*/false);
  r.no_gradcheck("stop_gradient", "no history by definition (sg of docs/metaquant.md §5)");

  // In place, no history: the forward works on a copy of the destination.
  for (Shape s : {Shape{5}, Shape{4, 33}, Shape{100003}}) {
    const bool perf = s == Shape{100003};
    OpCase& axpy = r.add("axpy_inplace", "dst += -0.25 src " + shape_str(s));
    axpy.build = from_inputs({normal(s, 1), normal(s, 2)}, [](const std::vector<Tensor>& in) {
      Tensor d = in[0].clone();
      axpy_inplace(d, -0.25, in[1]);
      return std::vector<Tensor>{d};
    });
    axpy.reference = pointwise([](double d, double src) { return d - 0.25 * src; });
    axpy.perf = perf;
    axpy.perf_bytes = 12.0 * shape_numel(s);
    OpCase& alias = r.add("axpy_inplace", "dst += dst (aliased) " + shape_str(s));
    alias.build = from_inputs({normal(s, 3)}, [](const std::vector<Tensor>& in) {
      Tensor d = in[0].clone();
      axpy_inplace(d, 1.0, d);
      return std::vector<Tensor>{d};
    });
    alias.reference = pointwise([](double d, double) { return 2 * d; });
    OpCase& addi = r.add("add_inplace", "dst += src " + shape_str(s));
    addi.build = from_inputs({normal(s, 4), normal(s, 5)}, [](const std::vector<Tensor>& in) {
      Tensor d = in[0].clone();
      add_inplace(d, in[1]);
      return std::vector<Tensor>{d};
    });
    addi.reference = pointwise([](double d, double src) { return d + src; });
    addi.perf = perf;
    addi.perf_bytes = 12.0 * shape_numel(s);
  }
  r.no_gradcheck("axpy_inplace", "in place, records no history");
  r.no_gradcheck("add_inplace", "in place, records no history");
}

void add_reduction_cases(OpRegistry& r) {
  struct Reduction {
    const char* op;
    Tensor (*fn)(const Tensor&);
    uint64_t seed;
    Tol f32, f64;  // f64 sum and mean within 1e-12 relative; max_abs exact
  };
  const Reduction reductions[] = {
      {"sum", sum, 21, {kF32SumAbs, kF32SumRel}, {0, 1e-12}},
      {"mean", mean, 22, {kF32SumAbs, kF32SumRel}, {0, 1e-12}},
      {"max_abs", max_abs, 23, {0, 0}, {0, 0}},
  };
  auto reference = [](const std::string& op) -> Reference {
    return [op](const HostTensors& in, DType) {
      double s = 0, m = 0;
      for (double v : in[0].v) s += v, m = std::max(m, std::fabs(v));
      const double y = op == "sum" ? s : op == "mean" ? s / in[0].numel() : m;
      return std::vector<Expected>{HostTensor{{}, {y}}};
    };
  };
  for (const Reduction& red : reductions) {
    Fn fn = unary(red.fn);
    // Shapes up to several CUDA blocks and a tail.
    for (Shape s : {Shape{1}, Shape{5, 7}, Shape{4, 3}, Shape{1000}, Shape{3, 1 << 18},
                    Shape{(1 << 22) + 5}}) {
      OpCase& c = r.add(red.op, shape_str(s));
      c.build = from_inputs({normal(s, red.seed).grad()}, fn);
      c.reference = reference(red.op);
      c.f32_tol = red.f32;
      c.f64_tol = red.f64;
      if (shape_numel(s) <= 35) c.gradcheck = kGradCheckTol;
      c.perf = s == Shape{(1 << 22) + 5};
      c.perf_bytes = 4.0 * shape_numel(s);
    }
  }
  // max_abs ties: the gradient is split evenly among every element with |x| == max, with its
  // sign (on both devices; not differentiable there).
  OpCase& ties = r.add("max_abs", "ties [6]");
  ties.build = from_inputs({values({1, -3, 3, 0.5, -3, 2}, {6}).grad()}, unary(max_abs));
  ties.reference = reference("max_abs");
  ties.f32_tol = ties.f64_tol = {0, 0};
}

}  // namespace mq::test
