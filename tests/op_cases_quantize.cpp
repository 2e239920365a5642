// Harness cases of the weight quantizer (models/quantize_op.h): quantize (W~, W^, scale and its
// STE gradient), quantize_backward and calibration, for every quantizer and dorefa bitwidth,
// against the plain formulas of docs/metaquant.md §3 in double; the STE gradient also against
// finite differences of its surrogate; CUDA against the CPU with identical codes.
#include <cmath>

#include "tests/quant_specs.h"
#include "kernels/quantize/quantize_math.h"
#include "models/quantize_op.h"
#include "op_harness.h"

namespace mq::test {

namespace {

constexpr double kF32ScaleRel = 1e-6;      // f32 scales (m, alpha, a) vs the f64 formula
constexpr double kF32TildeAbs = 2e-7 * 4;  // f32 W~ in [0, 1] vs the f64 formula
constexpr double kTieWindow = 1e-5;        // |n W~ - (j + 1/2)| under this: either code is fine
constexpr double kF64Exact = 1e-14;
constexpr double kF32GradRel = 1e-5;       // f32 STE gradient / calibration
constexpr double kF32GradAbs = 1e-6;       // ... plus this / m (dorefa's cancellation)
constexpr double kF64GradRel = 1e-12;
constexpr double kCudaQuantRel = 1e-6;     // CUDA vs CPU (the shared math makes them equal)
constexpr double kCudaQuantAbs = 1e-7;     // for values near zero (gradients of saturated tanh)

std::vector<QuantSpec> all_specs() { return test::table_specs(); }

int64_t channels_for(const Shape& shape, QuantSpec spec) {
  return spec.kind == Quantizer::bwn_f && !shape.empty() ? shape[0] : 1;
}

// The plain formulas (and the ternary example) in double. `scale_in`: the scale to take instead
// of computing it (quantize_backward's input).
struct QuantRef {
  std::vector<double> w_tilde, w_hat, scale, grad, calib;
};
QuantRef quant_ref(const HostTensor& W, const HostTensor& g, QuantSpec spec, bool f32,
                   const HostTensor* scale_in = nullptr) {
  const std::vector<double>& w = W.v;
  const int64_t channels = channels_for(W.shape, spec);
  const size_t n = w.size(), per = n / channels;
  QuantRef r;
  r.w_tilde.resize(n), r.w_hat.resize(n), r.grad.resize(n), r.calib.assign(n, 1.0);
  auto grad_of = [&](size_t i) { return g.v.empty() ? 0.0 : g[i]; };
  if (spec.kind == Quantizer::dorefa) {
    const double levels = (1 << spec.bits) - 1;
    double m = 0;
    for (double x : w) m = std::max(m, std::fabs(std::tanh(x)));
    if (scale_in) m = (*scale_in)[0];
    r.scale = {m};
    for (size_t i = 0; i < n; ++i) {
      const double t = std::tanh(w[i]);
      r.w_tilde[i] = m > 0 ? t / (2 * m) + 0.5 : 0.5;
      r.w_hat[i] = 2 * (std::nearbyint(levels * r.w_tilde[i]) / levels) - 1;
      // W~ <= 1 always holds for the forward's own m; a given (rounded) m may leave the largest
      // |W| a hair above 1, where the STE still passes the gradient.
      const bool inside = scale_in || r.w_tilde[i] <= 1;
      r.grad[i] = m > 0 ? 2 * grad_of(i) * inside / (2 * m) * (1 - t * t) : 0;
      r.calib[i] = m > 0 ? (1 - t * t) / m : 0;
    }
    return r;
  }
  r.w_tilde = w;
  std::vector<double> a(channels), delta(channels, 0.0);
  for (int64_t k = 0; k < channels; ++k) {
    double s = 0;
    for (size_t i = k * per; i < (k + 1) * per; ++i) s += std::fabs(w[i]);
    a[k] = s / per;
  }
  if (spec.kind == Quantizer::ternary) {
    // the kernel's threshold arithmetic, in the kernel's precision (decides which side ties go)
    delta[0] = f32 ? double(0.7f * float(a[0])) : 0.7 * a[0];
    double s = 0, c = 0;
    for (double x : w)
      if (std::fabs(x) > delta[0]) s += std::fabs(x), c += 1;
    a[0] = c > 0 ? s / c : 0;
  }
  if (scale_in) a = scale_in->v;
  r.scale = a;
  for (size_t i = 0; i < n; ++i) {
    const size_t k = i / per;
    const double sgn = (w[i] > 0) - (w[i] < 0);
    const bool keep = spec.kind != Quantizer::ternary || std::fabs(w[i]) > delta[k];
    r.w_hat[i] = keep ? a[k] * sgn : 0;
    r.grad[i] = std::fabs(w[i]) <= 1 ? a[k] * grad_of(i) : 0;
  }
  return r;
}

// The STE gradient's bound: f32 dorefa's 1 - tanh^2 cancels where tanh saturates (absolute
// error ~ 2 ulp(1) / m, times the upstream gradient).
Expected ste_gradient(const QuantRef& ref, const HostTensor& g, const Shape& shape, QuantSpec spec,
                      bool f32) {
  const double rel = f32 ? kF32GradRel : kF64GradRel;
  const double inv_m = spec.kind == Quantizer::dorefa && ref.scale[0] > 0 ? 1 / ref.scale[0] : 0;
  const double abs_c = f32 ? kF32GradAbs * inv_m : 0;
  Expected e(HostTensor{shape, ref.grad});
  e.excess = [want = ref.grad, g = g.v, rel, abs_c](int64_t i, double a) {
    return std::fabs(a - want[i]) - (rel * std::fabs(want[i]) + abs_c * std::fabs(g[i]));
  };
  return e;
}

struct Weights {
  std::string what;
  Input w;
  bool gradcheck = false;
  // Millions of elements (CUDA's many blocks): the f64 sums of |W| round differently from the
  // plain loop's by more than kF64Exact, so the formula runs in f32 only.
  bool f32_only = false;
};

OpCase& add_quantize(OpRegistry& r, QuantSpec spec, const Weights& in) {
  OpCase& c = r.add("quantize", spec_str(spec) + " " + in.what);
  Input w = in.w;
  c.build = from_inputs({w.grad()}, [spec](const std::vector<Tensor>& in) {
    QuantizeResult q = quantize(in[0], spec);
    const Tensor is_w = Tensor::scalar(q.w_tilde_is_w ? 1 : 0, in[0].dtype()).to(in[0].device());
    return std::vector<Tensor>{q.w_tilde, q.w_hat, q.scale, is_w};
  });
  c.reference = [spec](const HostTensors& in, DType dt) {
    const bool f32 = dt == DType::f32;
    const QuantRef ref = quant_ref(in[0], {}, spec, f32);
    const Shape& shape = in[0].shape;
    const double scale_tol = f32 ? kF32ScaleRel : kF64Exact;
    Expected w_tilde(HostTensor{shape, ref.w_tilde});
    Expected w_hat(HostTensor{shape, ref.w_hat}, Tol{0, scale_tol});
    const double tilde_abs = f32 ? kF32TildeAbs : kF64Exact;
    if (spec.kind == Quantizer::dorefa) {
      // W~ in [0, 1]; W^ on the grid of its code, the code the formula's unless W~ sits within
      // the tie window (then either neighbour).
      const double levels = (1 << kernel_bits(spec)) - 1;
      const double grid_tol = f32 ? 1e-6 : kF64Exact;
      w_tilde.excess = [want = ref.w_tilde, tilde_abs](int64_t i, double a) {
        return std::max({std::fabs(a - want[i]) - tilde_abs, -a, a - 1});
      };
      w_hat.excess = [tilde = ref.w_tilde, levels, grid_tol, f32](int64_t i, double a) {
        const double x = levels * tilde[i];
        const bool near_tie = f32 && std::fabs(x - std::floor(x) - 0.5) < kTieWindow * levels;
        const double code = std::round((a + 1) / 2 * levels);
        const double off_grid = std::fabs(a - (2 * (code / levels) - 1)) - grid_tol;
        const double code_error = std::fabs(code - std::nearbyint(x)) - (near_tie ? 1 : 0);
        return std::max(off_grid, code_error);
      };
    } else {
      w_tilde.tol = Tol{tilde_abs, 0};
    }
    const double is_w = spec.kind != Quantizer::dorefa ? 1 : 0;
    return std::vector<Expected>{w_tilde, w_hat,
                                 Expected(HostTensor{{int64_t(ref.scale.size())}, ref.scale},
                                          Tol{0, scale_tol}),
                                 Expected(HostTensor{{}, {is_w}}, Tol{0, 0})};
  };
  c.grad_reference = [spec](const HostTensors& in, const HostTensors& cot, DType dt) {
    const bool f32 = dt == DType::f32;
    return std::vector<Expected>{
        ste_gradient(quant_ref(in[0], cot[1], spec, f32), cot[1], in[0].shape, spec, f32)};
  };
  // Identical codes on CUDA: W^ is a function of the code and its channel's scale.
  c.cuda_expected = [spec](const HostTensors& cpu) {
    const std::vector<double> scale = cpu[2].v;
    const int64_t per = cpu[1].numel() / static_cast<int64_t>(scale.size());
    Expected w_hat(cpu[1]);
    w_hat.excess = [want = cpu[1].v, scale, per](int64_t i, double a) {
      return std::fabs(a - want[i]) - (kCudaQuantRel * std::fabs(scale[i / per]) + 1e-7);
    };
    return std::vector<Expected>{Expected(cpu[0], Tol{0, kCudaQuantRel}), w_hat,
                                 Expected(cpu[2], Tol{0, kCudaQuantRel}), Expected(cpu[3], Tol{0, 0})};
  };
  c.cuda_grad_tol = Tol{kCudaQuantAbs, kCudaQuantRel};
  if (in.gradcheck) {
    c.gradcheck = kGradCheckTol;
    // The STE rule is the exact derivative of a smooth surrogate with the scale frozen:
    // dorefa tanh(W) / m, bwn/bwn-f/ternary scale * clamp(W, -1, 1).
    c.grad_surrogate = [spec](const std::vector<Tensor>& at) -> MultiFn {
      const std::vector<double> scale = host(quantize(at[0].detach(), spec).scale).v;
      return [spec, scale](const std::vector<Tensor>& in) {
        const HostTensor w = host(in[0]);
        const size_t per = w.v.size() / scale.size();
        std::vector<double> s(w.v.size());
        for (size_t i = 0; i < s.size(); ++i)
          s[i] = spec.kind == Quantizer::dorefa ? std::tanh(w[i]) / scale[0]
                                                : scale[i / per] * std::clamp(w[i], -1.0, 1.0);
        return std::vector<Tensor>{Tensor(), Tensor::from_vector(s, w.shape), Tensor(), Tensor()};
      };
    };
  }
  return c;
}

OpCase& add_calibration(OpRegistry& r, QuantSpec spec, const Weights& in) {
  OpCase& c = r.add("calibration", spec_str(spec) + " " + in.what);
  c.build = from_inputs({in.w}, [spec](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{calibration(in[0], spec)};
  });
  c.reference = [spec](const HostTensors& in, DType dt) {
    const bool f32 = dt == DType::f32;
    const QuantRef ref = quant_ref(in[0], {}, spec, f32);
    const double inv_m = spec.kind == Quantizer::dorefa && ref.scale[0] > 0 ? 1 / ref.scale[0] : 0;
    const Tol tol{f32 ? kF32GradAbs * inv_m : 0, f32 ? kF32GradRel : kF64GradRel};
    return std::vector<Expected>{Expected(HostTensor{in[0].shape, ref.calib}, tol)};
  };
  c.cuda_tol = {kCudaQuantAbs, kCudaQuantRel};
  return c;
}

// quantize_backward(W, g_hat, scale): the STE's backward alone, with the forward's scale.
OpCase& add_quantize_backward(OpRegistry& r, QuantSpec spec, const Weights& in, uint64_t g_seed) {
  OpCase& c = r.add("quantize_backward", spec_str(spec) + " " + in.what);
  Input w = in.w;
  c.build = [spec, w, g_seed](DType dt, Device dev) {
    Built b;
    // The scale from the CPU on both devices: the build must be the same on both.
    const Tensor scale = quantize(materialize(w, dt, Device::cpu()), spec).scale.to(dev);
    b.inputs = {materialize(w, dt, dev), materialize(normal(w.shape, g_seed), dt, dev), scale};
    b.forward = [spec, in = b.inputs] {
      return std::vector<Tensor>{quantize_backward(in[0], in[1], in[2], spec)};
    };
    return b;
  };
  c.reference = [spec](const HostTensors& in, DType dt) {
    const bool f32 = dt == DType::f32;
    return std::vector<Expected>{
        ste_gradient(quant_ref(in[0], in[1], spec, f32, &in[2]), in[1], in[0].shape, spec, f32)};
  };
  c.cuda_tol = {kCudaQuantAbs, kCudaQuantRel};
  return c;
}

// Random weights (a trained net's are small; large ones saturate tanh) and edge cases: all
// zero (m = alpha = a = 0; dorefa W~ = 1/2 exactly, a tie), one element, huge and tiny
// magnitudes among exact zeros, negative zeros (the scale comes from |w|: +0 for -0), equal
// magnitudes (ternary keeps every element), and a stretch of -0.0 as long as a CUDA block's
// first sweep (its max is a zero, which must not take the sign bit into an atomicMax over
// float bits).
std::vector<Weights> weights() {
  std::vector<Weights> list;
  uint64_t seed = 1;
  // vector and scalar paths: slices multiple of 4 or not, tails, threads, many CUDA blocks
  for (Shape s : {Shape{1}, Shape{3}, Shape{17}, Shape{16, 3, 3, 3}, Shape{3, 5, 1, 1},
                  Shape{10, 64}, Shape{10, 65}, Shape{64, 32, 3, 3}, Shape{7, 5779},
                  Shape{1 << 20}, Shape{3, 333333}})
    for (double scale : {0.1, 3.0})
      list.push_back({fmt::format("{} scale {}", shape_str(s), scale), normal(s, seed++, scale),
                      false, shape_numel(s) > 500000});
  list.push_back({"[4, 3, 2, 2] scale 0.7", normal({4, 3, 2, 2}, 11, 0.7), true});
  list.push_back({"zeros [4, 3]", values(std::vector<double>(12, 0.0), {4, 3})});
  list.push_back({"[-2.5]", values({-2.5}, {1})});
  list.push_back({"huge, tiny and zeros [9]", values({1e30, -1e30, 0, 0.25, -0.25, 1, -1, 1e-30, 0}, {9})});
  list.push_back({"negative zeros [4]", values({-0.0, 0.3, -0.0, -0.6}, {4})});
  list.push_back({"all -0 [2]", values({-0.0, -0.0}, {2})});
  list.push_back({"equal magnitudes [2, 2]", values({0.5, -0.5, 0.5, 0.5}, {2, 2})});
  Input stretch = normal({64, 16, 3, 3}, 5, 0.1);
  stretch.values = [gen = stretch.values] {
    std::vector<double> v = gen();
    std::fill(v.begin(), v.begin() + 4096, -0.0);
    return v;
  };
  list.push_back({"4096 -0 then random [64, 16, 3, 3]", stretch});
  return list;
}

}  // namespace

void add_quantize_cases(OpRegistry& r) {
  const std::vector<Weights> ws = weights();
  for (QuantSpec spec : all_specs()) {
    uint64_t g_seed = 100;
    for (const Weights& w : ws)
      for (OpCase* c : {&add_quantize(r, spec, w), &add_calibration(r, spec, w),
                        &add_quantize_backward(r, spec, w, g_seed++)})
        if (w.f32_only) c->dtypes = {DType::f32}, c->large = true;
  }
  r.no_gradcheck("calibration", "no history: c is a constant of the meta update");
  r.no_gradcheck("quantize_backward", "the STE's backward itself, without history");
  // perf: a million weights (ResNet20 has 0.27M), dorefa 2-bit and ternary.
  for (QuantSpec spec : {QuantSpec{Quantizer::dorefa, 2}, QuantSpec{Quantizer::ternary, 2}}) {
    const Weights big{"[1048576]", normal({1 << 20}, 1, 0.1)};
    for (OpCase* c : {&add_quantize(r, spec, big), &add_calibration(r, spec, big),
                      &add_quantize_backward(r, spec, big, 2)}) {
      c->reference = nullptr;
      c->cuda = false;
      c->perf = true;
      c->perf_bytes = 4.0 * (1 << 20) * (c->op == "quantize" ? 3 : 2);
    }
  }
}

}  // namespace mq::test
