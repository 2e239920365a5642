// Weight quantizers (kernels/quantize, models/quantize_op) beyond their formulas, STE gradient
// checks and CUDA comparisons (those are the op harness's, tests/op_cases_quantize.cpp): f32
// tanh, rounding ties, the STE against an engine-op surrogate, calibration's relation to the STE,
// sharing, parsing and errors, PyTorch's summation order, thread counts.
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/quant_specs.h"
#include "kernels/quantize/quantize.h"
#include "kernels/quantize/torch_order_sum.h"
#include "models/quantize_op.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;
using kernels::Quantizer;

namespace {
constexpr double kTanhUlps = 4;  // our f32 tanh vs the exact value

std::vector<QuantSpec> all_specs() { return test::table_specs(); }

}  // namespace

TEST_CASE("f32 tanh is within a few ulp and odd", "[quantize]") {
  double worst = 0, worst_x = 0;
  for (double x = -12; x <= 12; x += 0.000731) {
    const float xf = float(x);
    const double exact = std::tanh(double(xf));
    const double got = kernels::tanh_f32(xf);
    const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::fabs(exact), 1e-38)) - 23);
    const double err = std::fabs(got - exact) / ulp;
    if (err > worst) worst = err, worst_x = xf;
    REQUIRE(kernels::tanh_f32(-xf) == -kernels::tanh_f32(xf));
  }
  INFO("worst " << worst << " ulp at " << worst_x);
  REQUIRE(worst <= kTanhUlps);
  REQUIRE(kernels::tanh_f32(0.f) == 0.f);
  REQUIRE(kernels::tanh_f32(1e-30f) == 1e-30f);
  REQUIRE(kernels::tanh_f32(1e30f) == 1.f);
  REQUIRE(kernels::tanh_f32(-std::numeric_limits<float>::infinity()) == -1.f);
}

TEST_CASE("rounding is half to even", "[quantize]") {
  for (auto [x, want] : std::vector<std::pair<double, double>>{
           {0.5, 0}, {1.5, 2}, {2.5, 2}, {3.5, 4}, {-0.5, -0.0}, {254.5, 254}, {0.49999997, 0}}) {
    REQUIRE(kernels::round_half_even(x) == want);
    REQUIRE(kernels::round_half_even(float(x)) == float(want));
  }
}

TEST_CASE("dorefa rounds the tie at a zero weight to even", "[quantize]") {
  // the ties themselves: a zero weight sits exactly at W~ = 1/2, n W~ = 2^(k-1) - 1/2
  for (int bits = kernels::kMinDorefaBits; bits <= kernels::kMaxDorefaBits; ++bits) {
    Tensor w = Tensor::from_vector<float>({0.f, 0.3f, -0.7f}, {3});
    auto wh = quantize(w, {Quantizer::dorefa, bits}).w_hat.to_vector<float>();
    const double n = (1 << bits) - 1, even = bits == 1 ? 0 : (1 << (bits - 1));
    REQUIRE(wh[0] == 2.f * (float(even) / float(n)) - 1.f);  // the kernel's f32 arithmetic
  }
  auto z = quantize(Tensor::zeros({5}), {Quantizer::dorefa, 1});
  REQUIRE(z.w_hat.to_vector<float>() == std::vector<float>(5, -1.f));  // round(0.5) = 0
}

TEST_CASE("dorefa STE equals the gradient of its surrogate in engine ops", "[quantize][grad]") {
  // The STE against finite differences of its surrogate is the op harness's gradient check;
  // here against the same surrogate composed of engine ops (an independent implementation).
  Tensor W = randn({6, 5}, 13, DType::f64, 0.5).set_requires_grad();
  Tensor G = randn(W.shape(), 14, DType::f64);
  quantize(W, {Quantizer::dorefa, 3}).w_hat.backward(G);
  Tensor ours = W.grad().clone();
  W.zero_grad();
  Tensor t = tanh(W);
  const double m = max_abs(t).item();
  mul_scalar(t, 1.0 / m).backward(G);
  require_close(ours, W.grad(), 1e-14, 1e-12, "dorefa STE vs engine-op surrogate");
}

TEST_CASE("calibration is dW^/dW of the STE and has no history", "[quantize][grad]") {
  Tensor W = randn({8, 4}, 21, DType::f64, 0.4).set_requires_grad();
  Tensor G = randn(W.shape(), 22, DType::f64);
  for (QuantSpec spec : all_specs()) {
    Tensor c = calibration(W, spec);
    REQUIRE_FALSE(c.requires_grad());
    if (spec.kind != Quantizer::dorefa) {
      REQUIRE(to_doubles(c) == std::vector<double>(W.numel(), 1.0));
      continue;
    }
    W.zero_grad();
    quantize(W, spec).w_hat.backward(G);
    require_close(W.grad(), mul(c, G), 1e-15, 1e-13, "dorefa: g_W = c * g_W^");
  }
}

TEST_CASE("quantize: history, sharing and bwn-f channels", "[quantize]") {
  Tensor W = randn({4, 2, 3, 3}, 31, DType::f32).set_requires_grad();
  auto r = quantize(W, {Quantizer::bwn_f, 1});
  REQUIRE(r.w_hat.requires_grad());
  REQUIRE_FALSE(r.w_tilde.requires_grad());
  REQUIRE_FALSE(r.scale.requires_grad());
  REQUIRE(r.w_tilde.same_storage(W));
  REQUIRE(r.scale.shape() == Shape{4});
  auto d = quantize(W, {Quantizer::dorefa, 2});
  REQUIRE_FALSE(d.w_tilde.same_storage(W));
  {
    NoGradGuard ng;
    REQUIRE_FALSE(quantize(W, {Quantizer::dorefa, 2}).w_hat.requires_grad());
  }
  REQUIRE(per_tensor({Quantizer::bwn_f, 1}).kind == Quantizer::bwn);
  REQUIRE(kernel_bits({Quantizer::bwn, 5}) == 1);
  REQUIRE(kernel_bits({Quantizer::ternary, 1}) == 2);
}

TEST_CASE("quantizer specs parse, print and reject bad input", "[quantize]") {
  REQUIRE(parse_quantizer("dorefa") == Quantizer::dorefa);
  REQUIRE(parse_quantizer("BWN") == Quantizer::bwn);
  REQUIRE(parse_quantizer("bwn-f") == Quantizer::bwn_f);
  REQUIRE(parse_quantizer("bwn_f") == Quantizer::bwn_f);
  REQUIRE(parse_quantizer("ternary") == Quantizer::ternary);
  for (const auto& row : kernels::kQuantizerTable)
    REQUIRE(parse_quantizer(quantizer_str(row.kind)) == row.kind);
  REQUIRE(spec_str({Quantizer::dorefa, 4}) == "dorefa-4bit");
  REQUIRE_THROWS_WITH(parse_quantizer("xnor"), Catch::Contains("dorefa, bwn, bwn-f, ternary"));
  Tensor W = randn({3, 4}, 1, DType::f32);
  const int max_bits = kernels::kMaxDorefaBits;
  REQUIRE_THROWS_WITH(quantize(W, {Quantizer::dorefa, 0}), Catch::Contains(test::dorefa_bits_hint()));
  REQUIRE_THROWS_WITH(quantize(W, {Quantizer::dorefa, max_bits + 1}),
                      Catch::Contains(test::dorefa_bits_hint()));
  REQUIRE_THROWS_WITH(calibration(W, {Quantizer::bwn, max_bits + 4}),
                      Catch::Contains(test::dorefa_bits_hint()));
  REQUIRE_THROWS_WITH(quantize(Tensor::zeros({3}, DType::i32), {}), Catch::Contains("f32 or f64"));
  REQUIRE_THROWS_WITH(quantize(Tensor::zeros({0}), {}), Catch::Contains("empty"));
  REQUIRE_THROWS_WITH(quantize(Tensor(), {}), Catch::Contains("undefined"));
  // kernel-level checks
  REQUIRE_THROWS_WITH(kernels::check_quantize_args(Quantizer::bwn, 2, 4, 1),
                      Catch::Contains("1 bit"));
  REQUIRE_THROWS_WITH(kernels::check_quantize_args(Quantizer::bwn_f, 1, 10, 3),
                      Catch::Contains("do not split"));
  REQUIRE_THROWS_WITH(kernels::check_quantize_args(Quantizer::dorefa, 1, 8, 2),
                      Catch::Contains("per-tensor"));
}

TEST_CASE("BWN alpha's sum of |W| rounds exactly as PyTorch's CPU torch.sum", "[quantize]") {
  // Expected values: torch.sum(torch.abs(w)) from PyTorch 1.13 (one thread) on the sequence
  // below, which is exact in float; f32 sums are 8-lane, f64 sums 4-lane cascades. Checked at
  // 1 and 2 threads (the cascade's groups are summed in parallel, the result must not move).
  struct Case {
    int64_t n;
    float f32;
    double f64;
  };
  const Case cases[] = {
      {1, 0x1.0p-1f, 0x1.0p-1},
      {3, 0x1.b325dap-1f, 0x1.b325dap-1},
      {7, 0x1.fbac28p+0f, 0x1.fbac29p+0},
      {8, 0x1.0p+1f, 0x1.0p+1},
      {31, 0x1.f00858p+2f, 0x1.f00857cp+2},
      {33, 0x1.0ce27ep+3f, 0x1.0ce27dcp+3},
      {100, 0x1.910446p+4f, 0x1.9104464p+4},
      {1000, 0x1.f40824p+7f, 0x1.f4082164p+7},
      {4608, 0x1.200aecp+10f, 0x1.200aebf98p+10},
      {9216, 0x1.200424p+11f, 0x1.200424facp+11},
      {36864, 0x1.200224p+13f, 0x1.2002246400000p+13},
      {37000, 0x1.210fbep+13f, 0x1.210fbd92dp+13},
      {100000, 0x1.86a05cp+14f, 0x1.86a05a5d78p+14},
      {1048576, 0x1.000006p+18f, 0x1.000005e4868p+18},
      {3000017, 0x1.6e368ep+19f, 0x1.6e368ef9a6cp+19},
  };
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Case& c : cases) {
      std::vector<float> wf(static_cast<size_t>(c.n));
      std::vector<double> wd(wf.size());
      for (int64_t i = 0; i < c.n; ++i) {
        const uint64_t u = (uint64_t(i) * 2654435761ull) % (uint64_t(1) << 24);
        wf[i] = float(u) / float(1 << 24) - 0.5f;
        wd[i] = wf[i];
      }
      INFO("n = " << c.n << ", threads = " << threads);
      CHECK(kernels::torch_order_sum_abs(wf.data(), c.n) == c.f32);
      CHECK(kernels::torch_order_sum_abs(wd.data(), c.n) == c.f64);
    }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("f32 tanh's polynomial branch alone equals tanh_f32 below its bound", "[quantize]") {
  // The CPU dorefa loops take tanh_small_f32 for chunks of W below kTanhSmallBound.
  const float bound = kernels::kTanhSmallBound;
  for (float x = 0; x < bound; x = std::nextafter(x + x * 0x1p-12f, bound)) {
    REQUIRE(kernels::tanh_small_f32(x) == kernels::tanh_f32(x));
    REQUIRE(kernels::tanh_small_f32(-x) == kernels::tanh_f32(-x));
  }
  const float below = std::nextafter(bound, 0.f);
  REQUIRE(kernels::tanh_small_f32(below) == kernels::tanh_f32(below));
  REQUIRE(std::isnan(kernels::tanh_small_f32(std::nanf(""))));
}

TEST_CASE("CPU dorefa kernels give tanh_f32's bits whichever tanh path a chunk takes",
          "[quantize]") {
  // Weights of a trained net (|w| < 0.5: the polynomial path) with large ones planted in a few
  // chunks (the full tanh there), checked bit for bit against the element formulas with the
  // full tanh_f32, at 1 and 2 threads (300007 elements: split over threads, each thread's
  // segment in several blocks run back to front, odd tail).
  const int64_t n = 300007;
  std::vector<float> w = randn({n}, 11, DType::f32, 0.1).to_vector<float>();
  std::vector<float> g = randn({n}, 12, DType::f32, 1.0).to_vector<float>();
  for (int64_t i : {int64_t(700), int64_t(2050), int64_t(200001), int64_t(299999)})
    w[i] = i == 2050 ? -4.f : 0.7f;
  float max_abs = 0;
  for (float x : w) max_abs = std::max(max_abs, std::fabs(x));
  const float m = kernels::dorefa_scale_from_max(max_abs);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int bits : {1, 2, 8}) {
      std::vector<float> wt(n), wh(n), gw(n), c(n);
      float scale = 0;
      kernels::quantize_forward_cpu<float>(Quantizer::dorefa, bits, w.data(), n, 1, wt.data(),
                                           wh.data(), &scale);
      kernels::quantize_backward_cpu<float>(Quantizer::dorefa, w.data(), g.data(), &scale, n, 1,
                                            gw.data());
      kernels::quantize_calibration_cpu<float>(Quantizer::dorefa, w.data(), n, 1, c.data());
      REQUIRE(scale == m);
      int64_t first_diff = -1;
      for (int64_t i = 0; i < n && first_diff < 0; ++i) {
        float t = 0, h = 0;
        switch (bits) {
          case 1: kernels::dorefa_forward_element<float, 1>(w[i], m, t, h); break;
          case 2: kernels::dorefa_forward_element<float, 2>(w[i], m, t, h); break;
          default: kernels::dorefa_forward_element<float, 8>(w[i], m, t, h); break;
        }
        if (wt[i] != t || wh[i] != h || gw[i] != kernels::dorefa_backward_element(w[i], g[i], m) ||
            c[i] != kernels::dorefa_calibration_element(w[i], m))
          first_diff = i;
      }
      INFO("threads " << threads << ", bits " << bits << ", first differing element "
                      << first_diff << (first_diff >= 0 ? ", w " + std::to_string(w[first_diff]) : ""));
      REQUIRE(first_diff == -1);
    }
  }
  omp_set_num_threads(saved);
}

TEST_CASE("CPU ternary gives the same bits at any thread count", "[quantize]") {
  // Its three passes split fixed chunks over the threads (the middle pass back to front) and
  // combine per-chunk sums in chunk order.
  const int64_t n = 200003;
  const std::vector<float> w = randn({n}, 21, DType::f32, 0.1).to_vector<float>();
  // The plain formula in double: delta = 0.7 mean|W| (rounded to float as the kernel does),
  // a = mean of |W| over |W| > delta.
  double sum_abs = 0;
  for (float x : w) sum_abs += std::fabs(x);
  const float delta = kernels::ternary_threshold(static_cast<float>(sum_abs / double(n)));
  double sum_above = 0, count_above = 0;
  for (float x : w)
    if (std::fabs(x) > delta) sum_above += std::fabs(x), count_above += 1;
  const double a = sum_above / count_above;
  const int saved = omp_get_max_threads();
  std::vector<float> first;
  float first_scale = 0;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> wh(n);
    float scale = 0;
    kernels::quantize_forward_cpu<float>(Quantizer::ternary, 2, w.data(), n, 1, nullptr,
                                         wh.data(), &scale);
    if (first.empty()) first = wh, first_scale = scale;
    INFO("threads " << threads);
    REQUIRE(std::fabs(scale - a) <= 1e-6 * a);
    for (int64_t i = 0; i < n; ++i)
      REQUIRE(wh[i] == (std::fabs(w[i]) > delta ? (w[i] > 0 ? scale : -scale) : 0.f));
    REQUIRE(scale == first_scale);
    REQUIRE(wh == first);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("CPU quantizers called from inside a parallel region cover the whole weight",
          "[quantize]") {
  // A small W runs without a region of its own; it must not take the caller's team for its own.
  for (int64_t n : {int64_t(1000), int64_t(100003)}) {
    const std::vector<float> w = randn({n}, 31, DType::f32, 0.1).to_vector<float>();
    const std::vector<float> g = randn({n}, 32, DType::f32, 1.0).to_vector<float>();
    for (QuantSpec spec : all_specs()) {
      auto run = [&] {
        std::vector<float> wt(n), wh(n), gw(n), c(n);
        float scale = 0;
        kernels::quantize_forward_cpu<float>(spec.kind, kernel_bits(spec), w.data(), n, 1,
                                             wt.data(), wh.data(), &scale);
        kernels::quantize_backward_cpu<float>(spec.kind, w.data(), g.data(), &scale, n, 1,
                                              gw.data());
        kernels::quantize_calibration_cpu<float>(spec.kind, w.data(), n, 1, c.data());
        return std::vector<std::vector<float>>{wt, wh, gw, c, {scale}};
      };
      const auto outside = run();
      std::vector<std::vector<float>> inside;
#pragma omp parallel num_threads(2)
      {
#pragma omp single
        inside = run();
      }
      INFO(spec_str(spec) << ", n " << n);
      REQUIRE(inside == outside);
    }
  }
}
