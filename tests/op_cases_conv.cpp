// Harness cases of conv2d (a 7-loop convolution and its plain-loop adjoints; odd shapes, strides,
// padding, 1x1, non-square kernels) and conv2d_bn_eval (that convolution, eval-mode batch norm,
// residual, ReLU).
#include <cmath>

#include "op_harness.h"

namespace mq::test {

namespace {

struct Geometry {
  int64_t n, c, h, w, k, r, s, stride, pad;
  int64_t groups = 1;
  int64_t cg() const { return c / groups; }  // input channels per group
  int64_t p() const { return (h + 2 * pad - r) / stride + 1; }
  int64_t q() const { return (w + 2 * pad - s) / stride + 1; }
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {k, cg(), r, s}; }
  Shape y_shape() const { return {n, k, p(), q()}; }
  double macs() const { return double(n) * k * p() * q() * cg() * r * s; }
  std::string str() const {
    return fmt::format("n{} c{} {}x{} k{} {}x{} stride {} pad {}{}", n, c, h, w, k, r, s, stride,
                       pad, groups > 1 ? fmt::format(" groups {}", groups) : "");
  }
};

Geometry geometry(const HostTensor& x, const HostTensor& w, Conv2dParams p) {
  return {x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], w.shape[2], w.shape[3],
          p.stride, p.padding, p.groups};
}

// Calls f(y index, x index, w index) for every product of the convolution. Output channel ki
// belongs to group ki / (k / groups) and reads that group's cg() input channels.
template <class F>
void for_each_product(const Geometry& g, F f) {
  const int64_t cg = g.cg(), kg = g.k / g.groups;
  for (int64_t ni = 0; ni < g.n; ++ni)
    for (int64_t ki = 0; ki < g.k; ++ki)
      for (int64_t pi = 0; pi < g.p(); ++pi)
        for (int64_t qi = 0; qi < g.q(); ++qi)
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t ri = 0; ri < g.r; ++ri)
              for (int64_t si = 0; si < g.s; ++si) {
                const int64_t ih = pi * g.stride - g.pad + ri, iw = qi * g.stride - g.pad + si;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                const int64_t channel = ki / kg * cg + ci;
                f(((ni * g.k + ki) * g.p() + pi) * g.q() + qi,
                  ((ni * g.c + channel) * g.h + ih) * g.w + iw, ((ki * cg + ci) * g.r + ri) * g.s + si);
              }
}

HostTensor conv_ref(const HostTensor& x, const HostTensor& w, Conv2dParams p) {
  const Geometry g = geometry(x, w, p);
  HostTensor y{g.y_shape(), std::vector<double>(shape_numel(g.y_shape()), 0.0)};
  for_each_product(g, [&](int64_t yi, int64_t xi, int64_t wi) { y.v[yi] += x[xi] * w[wi]; });
  return y;
}

void add_conv2d(OpRegistry& r, const Geometry& g, uint64_t seed, double w_scale, bool x_grad,
                const std::string& note = "") {
  OpCase& c = r.add("conv2d", g.str() + note);
  const Conv2dParams p{g.stride, g.pad, g.groups};
  c.build = from_inputs({normal(g.x_shape(), seed).grad(x_grad), normal(g.w_shape(), seed + 1, w_scale).grad()},
                        [p](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{conv2d(in[0], in[1], p)};
                        });
  c.reference = [p](const HostTensors& in, DType) {
    return std::vector<Expected>{conv_ref(in[0], in[1], p)};
  };
  // The plain-loop adjoints: gx and gw for the output's cotangent.
  c.grad_reference = [p, x_grad](const HostTensors& in, const HostTensors& gy, DType) {
    const Geometry g = geometry(in[0], in[1], p);
    HostTensor gx{in[0].shape, std::vector<double>(in[0].v.size(), 0.0)};
    HostTensor gw{in[1].shape, std::vector<double>(in[1].v.size(), 0.0)};
    for_each_product(g, [&](int64_t yi, int64_t xi, int64_t wi) {
      gx.v[xi] += gy[0][yi] * in[1][wi];
      gw.v[wi] += gy[0][yi] * in[0][xi];
    });
    return x_grad ? std::vector<Expected>{gx, gw} : std::vector<Expected>{gw};
  };
  c.f32_tol = {kF32SumAbs, kF32SumRel};
  // Central differences: two convolutions per input element.
  const double perturbed = double(g.n * g.c * g.h * g.w + g.k * g.cg() * g.r * g.s);
  if (perturbed * g.macs() < 2e8) c.gradcheck = kGradCheckTol;
}

void add_biased_conv2d(OpRegistry& r, const Geometry& g, uint64_t seed) {
  OpCase& c = r.add("conv2d", g.str() + " bias");
  const Conv2dParams p{g.stride, g.pad, g.groups};
  c.build = from_inputs({normal(g.x_shape(), seed).grad(), normal(g.w_shape(), seed + 1, 0.5).grad(),
                         normal({g.k}, seed + 2).grad()},
                        [p](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{conv2d(in[0], in[1], in[2], p)};
                        });
  c.reference = [p](const HostTensors& in, DType) {
    HostTensor y = conv_ref(in[0], in[1], p);
    const int64_t k = y.shape[1], plane = y.shape[2] * y.shape[3];
    for (int64_t i = 0; i < y.numel(); ++i) y.v[i] += in[2][(i / plane) % k];
    return std::vector<Expected>{y};
  };
  c.grad_reference = [p](const HostTensors& in, const HostTensors& gy, DType) {
    const Geometry g = geometry(in[0], in[1], p);
    HostTensor gx{in[0].shape, std::vector<double>(in[0].v.size(), 0.0)};
    HostTensor gw{in[1].shape, std::vector<double>(in[1].v.size(), 0.0)};
    HostTensor gb{in[2].shape, std::vector<double>(in[2].v.size(), 0.0)};
    for_each_product(g, [&](int64_t yi, int64_t xi, int64_t wi) {
      gx.v[xi] += gy[0][yi] * in[1][wi];
      gw.v[wi] += gy[0][yi] * in[0][xi];
    });
    const int64_t plane = g.p() * g.q();
    for (int64_t i = 0; i < gy[0].numel(); ++i) gb.v[(i / plane) % g.k] += gy[0][i];
    return std::vector<Expected>{gx, gw, gb};
  };
  c.f32_tol = {kF32SumAbs, kF32SumRel};
  const double perturbed = double(g.n * g.c * g.h * g.w + g.k * g.cg() * g.r * g.s + g.k);
  if (perturbed * g.macs() < 2e8) c.gradcheck = kGradCheckTol;
}

struct Epilogue {
  bool affine, residual, relu;
  std::string str() const {
    return fmt::format("{}{}{}", affine ? " affine" : " no affine", residual ? " residual" : "",
                       relu ? " relu" : "");
  }
};

// conv2d_bn_eval: inputs x, weight, bn weight, bn bias, running mean, running var, residual
// (the flags say which of the optional ones the op gets).
OpCase& add_conv_bn_eval(OpRegistry& r, const Geometry& g, Epilogue e, uint64_t seed,
                         bool grad) {
  OpCase& c = r.add("conv2d_bn_eval", g.str() + e.str());
  const Conv2dParams p{g.stride, g.pad};
  const Shape k{g.k};
  c.build = from_inputs(
      {normal(g.x_shape(), seed).grad(grad), normal(g.w_shape(), seed + 1, 0.2).grad(grad),
       uniform_in(k, seed + 2, 0.5, 1.5), normal(k, seed + 3, 0.3), normal(k, seed + 4, 0.5),
       uniform_in(k, seed + 5, 0.2, 2.0), normal(g.y_shape(), seed + 6)},
      [p, e](const std::vector<Tensor>& in) {
        const BatchNormEvalParams bn{e.affine ? in[2] : Tensor(), e.affine ? in[3] : Tensor(),
                                     in[4], in[5], 1e-5};
        return std::vector<Tensor>{
            conv2d_bn_eval(in[0], in[1], p, bn, e.residual ? in[6] : Tensor(), e.relu)};
      });
  c.reference = [p, e](const HostTensors& in, DType) {
    HostTensor y = conv_ref(in[0], in[1], p);
    const int64_t channels = y.shape[1], plane = y.shape[2] * y.shape[3];
    for (int64_t i = 0; i < y.numel(); ++i) {
      const int64_t ch = (i / plane) % channels;
      double t = (y[i] - in[4][ch]) / std::sqrt(in[5][ch] + 1e-5);
      if (e.affine) t = t * in[2][ch] + in[3][ch];
      if (e.residual) t += in[6][i];
      y.v[i] = e.relu ? std::max(t, 0.0) : t;
    }
    return std::vector<Expected>{y};
  };
  c.f32_tol = {kF32SumAbs, kF32SumRel};
  if (grad) c.gradcheck = kGradCheckTol;  // the separate ops run when a gradient is needed
  return c;
}

void add_conv_bn_eval_cases(OpRegistry& r) {
  const std::vector<Geometry> shapes = {
      // n  c   h   w   k  r  s  stride pad
      {2, 3, 32, 32, 16, 3, 3, 1, 1},   // ResNet's first conv
      {2, 16, 16, 16, 16, 3, 3, 1, 1},  // stride 1, padded
      {2, 16, 16, 16, 32, 3, 3, 2, 1},  // stride 2
      {2, 16, 16, 16, 32, 1, 1, 2, 0},  // 1x1 stride 2 (the shortcut)
      {2, 24, 8, 8, 10, 1, 1, 1, 0},    // 1x1 stride 1
      {1, 5, 7, 9, 6, 3, 3, 1, 0},      // unpadded, odd sizes
  };
  for (const Geometry& g : shapes)
    for (int variant = 0; variant < 4; ++variant)
      add_conv_bn_eval(r, g, {variant != 1, (variant & 1) != 0, (variant & 2) != 0}, 51, false);
  add_conv_bn_eval(r, {2, 3, 6, 6, 4, 3, 3, 1, 1}, {true, true, true}, 61, true);
  // perf: a ResNet20 stage-1 block's conv at batch 128, inference (the fused CPU path).
  OpCase& perf = add_conv_bn_eval(r, {128, 16, 32, 32, 16, 3, 3, 1, 1}, {true, true, true}, 1, false);
  perf.reference = nullptr;
  perf.cuda = false;
  perf.perf = true;
  perf.perf_flops = 2.0 * 128 * 16 * 32 * 32 * 16 * 9;
}

}  // namespace

void add_conv_cases(OpRegistry& r) {
  const std::vector<Geometry> shapes = {
      // n  c  h  w  k  r  s  stride pad
      {2, 3, 8, 8, 4, 3, 3, 1, 1},     // first-conv like, channels 3
      {1, 1, 5, 7, 2, 3, 3, 1, 1},     // batch 1, channel 1, non-square
      {3, 4, 9, 6, 5, 3, 3, 2, 1},     // stride 2, odd sizes
      {2, 4, 8, 8, 6, 1, 1, 1, 0},     // 1x1 pointwise
      {2, 4, 8, 8, 6, 1, 1, 2, 0},     // 1x1 stride 2 (ResNet downsample)
      {2, 2, 7, 5, 3, 3, 2, 1, 0},     // padding 0, non-square kernel
      {1, 3, 4, 4, 2, 5, 5, 1, 2},     // kernel covering the whole input
      {2, 16, 10, 10, 16, 3, 3, 1, 1}, // deeper CRS
      {2, 8, 9, 9, 4, 3, 3, 3, 0},     // stride 3
      {2, 3, 5, 5, 4, 3, 3, 1, 1},     // small enough for central differences ...
      {1, 2, 6, 5, 3, 3, 3, 2, 1},
      {2, 3, 4, 4, 2, 1, 1, 2, 0},
      {1, 2, 5, 4, 2, 2, 3, 1, 0},     // ... with a 2x3 kernel
  };
  for (const Geometry& g : shapes) add_conv2d(r, g, 11, 1.0, true);
  // Grouped: 2 and 3 groups, depthwise (groups == channels) with 1 and 2 filters per channel,
  // strided and padded, a 2x3 kernel; MobileNetV2's depthwise 3x3 at a small batch. One filter
  // per channel takes the direct loops of engine/cpu/conv_depthwise.cpp.
  for (const Geometry& g : std::vector<Geometry>{{2, 4, 6, 6, 6, 3, 3, 1, 1, 2},
                                                 {1, 6, 7, 5, 3, 3, 3, 2, 1, 3},
                                                 {2, 4, 6, 5, 4, 3, 3, 1, 1, 4},
                                                 {2, 3, 5, 5, 6, 3, 3, 2, 1, 3},
                                                 {2, 4, 6, 6, 4, 1, 1, 1, 0, 2},
                                                 {4, 32, 16, 16, 32, 3, 3, 1, 1, 32},
                                                 {2, 5, 7, 6, 5, 3, 3, 2, 1, 5},
                                                 {1, 3, 6, 7, 3, 2, 3, 2, 0, 3}})
    add_conv2d(r, g, 41, 0.5, true);
  // With a bias (plain, grouped, 1x1), against the loops plus b[k]; its gradient the sum of gy
  // over n, p, q.
  for (const Geometry& g : std::vector<Geometry>{{2, 3, 5, 5, 4, 3, 3, 1, 1},
                                                 {1, 4, 6, 5, 4, 3, 3, 2, 1, 2},
                                                 {2, 4, 4, 4, 6, 1, 1, 1, 0},
                                                 {8, 16, 8, 8, 32, 3, 3, 1, 1}})
    add_biased_conv2d(r, g, 51);
  // Only the weight requires grad (the first conv's input never does).
  add_conv2d(r, {2, 3, 4, 4, 2, 3, 3, 1, 1}, 33, 1.0, false, " (weight only)");
  // Sizes of ResNet layers (cuDNN picks other algorithms); each twice in a row, so the second
  // runs on the plan the first cached.
  for (const Geometry& g : std::vector<Geometry>{{2, 3, 8, 8, 8, 3, 3, 1, 1},
                                                 {2, 4, 9, 9, 6, 3, 3, 2, 1},
                                                 {3, 5, 8, 8, 4, 1, 1, 2, 0},
                                                 {1, 2, 7, 5, 3, 3, 3, 1, 0},
                                                 {4, 16, 16, 16, 16, 3, 3, 1, 1},
                                                 {4, 16, 16, 16, 32, 3, 3, 2, 1}}) {
    add_conv2d(r, g, 31, 0.3, true);
    add_conv2d(r, g, 33, 0.3, true, " (cached plan)");
  }
  // perf: ResNet20's stage-1 conv at batch 128.
  const Geometry big{128, 16, 32, 32, 16, 3, 3, 1, 1};
  OpCase& perf = r.add("conv2d", big.str());
  const Conv2dParams p{big.stride, big.pad};
  perf.build = from_inputs({normal(big.x_shape(), 1).grad(), normal(big.w_shape(), 2, 0.3).grad()},
                           [p](const std::vector<Tensor>& in) {
                             return std::vector<Tensor>{conv2d(in[0], in[1], p)};
                           });
  perf.cuda = false;  // timed only
  perf.perf = true;
  perf.perf_flops = 2 * big.macs();

  add_conv_bn_eval_cases(r);
}

}  // namespace mq::test
