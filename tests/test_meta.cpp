// Meta networks and MetaQuant beyond the per-op checks (the fused meta gradient against plain
// ops, gradient checks, split_gradient and metaquant_weight against their formulas: the op
// harness's, tests/op_cases_meta.cpp): names and init, the LSTM state across calls, the whole
// split-gradient chain into phi, the lr schedules, the float math.
#include <cmath>

#include "engine/autograd.h"
#include "kernels/meta/meta_math.h"
#include "meta/meta_op.h"
#include "meta/quantized_layers.h"
#include "meta/trainers.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

TEST_CASE("meta nets: names, shapes and PyTorch default init bounds", "[meta]") {
  MetaNet fc(MetaNetConfig{MetaKind::fc_grad, 100});
  auto p = fc.named_parameters();
  REQUIRE(p.size() == 2);
  REQUIRE(p[0].first == "linear1.weight");
  REQUIRE(p[0].second.shape() == Shape{100, 1});
  REQUIRE(p[1].first == "linear2.weight");
  REQUIRE(p[1].second.shape() == Shape{1, 100});
  for (double v : to_doubles(p[0].second)) REQUIRE(std::abs(v) <= 1.0);  // fan_in 1
  for (double v : to_doubles(p[1].second)) REQUIRE(std::abs(v) <= 0.1);  // fan_in 100

  MetaNet multi(MetaNetConfig{MetaKind::multi_fc, 8, 4});
  auto m = multi.named_parameters();
  REQUIRE(m.size() == 4);
  REQUIRE(m[0].first == "network.Linear0.weight");
  REQUIRE(m[2].first == "network.Linear2.weight");
  REQUIRE(m[2].second.shape() == Shape{8, 8});
  REQUIRE(m[3].second.shape() == Shape{1, 8});

  MetaNet lstm(MetaNetConfig{MetaKind::lstm_fc, 6});
  auto l = lstm.named_parameters();
  const char* names[] = {"lstm1.weight_ih_l0", "lstm1.weight_hh_l0", "lstm1.bias_ih_l0",
                         "lstm1.bias_hh_l0", "fc1.weight", "fc1.bias"};
  REQUIRE(l.size() == 6);
  for (size_t k = 0; k < 6; ++k) REQUIRE(l[k].first == names[k]);
  REQUIRE(l[1].second.shape() == Shape{24, 6});
  for (const auto& [n, t] : l)
    for (double v : to_doubles(t)) REQUIRE(std::abs(v) <= 1 / std::sqrt(6.0));

  // Same seed, same weights; another seed differs.
  MetaNet a(MetaNetConfig{MetaKind::multi_fc, 8}, 5), b(MetaNetConfig{MetaKind::multi_fc, 8}, 5),
      c(MetaNetConfig{MetaKind::multi_fc, 8}, 6);
  require_close(a.parameters()[1], b.parameters()[1], 0, 0);
  REQUIRE(to_doubles(a.parameters()[1]) != to_doubles(c.parameters()[1]));

  REQUIRE(parse_meta_kind("FC-Grad") == MetaKind::fc_grad);
  REQUIRE(parse_meta_kind("multifc") == MetaKind::multi_fc);
  REQUIRE(parse_meta_kind("LSTMFC") == MetaKind::lstm_fc);
  REQUIRE_THROWS_WITH(parse_meta_kind("GRU"), Catch::Contains("FC-Grad, MultiFC, LSTMFC"));
  REQUIRE(parse_meta_act("") == MetaAct::none);
  REQUIRE(parse_meta_act("relu") == MetaAct::relu);
  REQUIRE_THROWS(MetaNet(MetaNetConfig{MetaKind::multi_fc, 8, 1}));
  REQUIRE_THROWS(MetaNet(MetaNetConfig{MetaKind::lstm_fc, 8, 3, MetaAct::relu}));
}

TEST_CASE("meta gradient: LSTM state advances one step per call", "[meta]") {
  MetaNet net(MetaNetConfig{MetaKind::lstm_fc, 4}, 3);
  Tensor g = randn({10}, 1, DType::f32), x = uniform({10}, 2, 0, 1, DType::f32);
  LstmState s1, s2, r2;
  NoGradGuard ng;
  Tensor G1 = meta_gradient(net, g, x, {}, &s1);
  Tensor G2 = meta_gradient(net, g, x, s1, &s2);
  meta_gradient_reference(net, g, x, s1, &r2);
  REQUIRE(s1.h.shape() == Shape{10, 4});
  require_close(s2.c, r2.c, 1e-6, 1e-5, "second step cell");
  REQUIRE(to_doubles(G1) != to_doubles(G2));  // the state matters
}

TEST_CASE("split gradient: consumers' slices reach phi in one backward", "[meta]") {
  // The chain meta_gradient -> split_gradient -> metaquant_weight x 2 against plain ops; each
  // op's own formula is the op harness's.
  MetaNet net(MetaNetConfig{MetaKind::multi_fc, 6}, 3, DType::f64);
  Tensor g = randn({10}, 1), x = uniform({10}, 2, -1, 1);
  Tensor W1 = randn({2, 2}, 3).set_requires_grad(), W2 = randn({6}, 4).set_requires_grad();
  Tensor c1 = uniform({2, 2}, 5, 0.5, 1.5), c2 = uniform({6}, 6, 0.5, 1.5);
  W1.set_grad(randn({2, 2}, 7));
  W2.set_grad(randn({6}, 8));
  const double lr = 0.1;
  // Fused path: metaquant_weight per slice.
  SplitGradient split = split_gradient(meta_gradient(net, g, x));
  Tensor m1 = metaquant_weight(W1, c1, {&split, 0, lr});
  Tensor m2 = metaquant_weight(W2, c2, {&split, 4, lr});
  Tensor R1 = randn({2, 2}, 9), R2 = randn({6}, 10);
  W1.zero_grad();
  W2.zero_grad();
  add(sum(mul(m1, R1)), sum(mul(tanh(m2), R2))).backward();
  std::vector<Tensor> fused;
  for (const Tensor& p : net.parameters()) fused.push_back(p.grad().clone());
  // Plain path: Wm = W - lr * c * G with G sliced by hand (values aside, same phi gradient).
  for (Tensor p : net.parameters()) p.zero_grad();
  Tensor G = meta_gradient_reference(net, g, x);
  Tensor G1 = matmul(G.reshape({1, 10}), [] {
                Tensor s = Tensor::zeros({10, 4}, DType::f64);
                for (int i = 0; i < 4; ++i) s.data<double>()[i * 4 + i] = 1;
                return s;
              }()).reshape({2, 2});
  Tensor G2 = matmul(G.reshape({1, 10}), [] {
                Tensor s = Tensor::zeros({10, 6}, DType::f64);
                for (int i = 0; i < 6; ++i) s.data<double>()[(4 + i) * 6 + i] = 1;
                return s;
              }()).reshape({6});
  Tensor p1 = sub(W1.detach(), mul_scalar(mul(c1, G1), lr));
  Tensor p2 = sub(W2.detach(), mul_scalar(mul(c2, G2), lr));
  // Same upstream gradient as the fused run (tanh at the fused values).
  Tensor up2 = mul(R2, sub(Tensor::full({6}, 1.0, DType::f64), mul(tanh(m2.detach()), tanh(m2.detach()))));
  add(sum(mul(p1, R1)), sum(mul(p2, up2))).backward();
  auto params = net.named_parameters();
  for (size_t k = 0; k < params.size(); ++k)
    require_close(fused[k], params[k].second.grad(), 1e-12, 1e-10, params[k].first);
}

TEST_CASE("lr schedules", "[meta]") {
  LrSchedule s = LrSchedule::parse("2");
  REQUIRE(s.after_epoch(0, 1.0, 1e-3) == 1e-3);
  REQUIRE(s.after_epoch(1, 1.0, 1e-3) == Approx(1e-4));
  LrSchedule a = LrSchedule::parse("adaptive");
  double lr = 1e-3;
  lr = a.after_epoch(0, 2.0, lr);
  lr = a.after_epoch(1, 1.5, lr);
  lr = a.after_epoch(2, 1.6, lr);
  lr = a.after_epoch(3, 1.5, lr);
  REQUIRE(lr == 1e-3);
  lr = a.after_epoch(4, 1.7, lr);  // third epoch without improving on 1.5
  REQUIRE(lr == Approx(1e-4));
  REQUIRE(LrSchedule::should_stop(5e-7));
  REQUIRE_THROWS_WITH(LrSchedule::parse("0"), Catch::Contains("adaptive"));
  REQUIRE_THROWS(LrSchedule::parse("x"));
}

namespace {
// Distance in units in the last place of float between `got` and the exact value `want`.
double ulps(float got, double want) {
  const float w = static_cast<float>(want);
  const double ulp = std::abs(double(std::nextafter(w, INFINITY)) - double(w));
  return std::abs(double(got) - want) / ulp;
}
}  // namespace

TEST_CASE("float math: the vectorizable exp, tanh and sigmoid are within 1.5-3 ulp", "[meta]") {
  // The LSTM cell loops use these (kernels/base/float_math.h) instead of libm's scalar calls; the
  // bounds are what the approximations guarantee, checked on a dense sweep and at the branch
  // and clamp points.
  double worst_exp = 0, worst_tanh = 0, worst_sigmoid = 0;
  for (float x = -20.0f; x < 20.0f; x += 3.1e-4f) {
    worst_exp = std::max(worst_exp, ulps(kernels::exp_f32(x), std::exp(double(x))));
    worst_tanh = std::max(worst_tanh, ulps(kernels::tanh_f32(x), std::tanh(double(x))));
    worst_sigmoid = std::max(worst_sigmoid, ulps(kernels::meta_sigmoid(x),
                                                 1.0 / (1.0 + std::exp(-double(x)))));
  }
  CHECK(worst_exp <= 1.5);
  CHECK(worst_tanh <= 2.0);
  CHECK(worst_sigmoid <= 3.0);
  for (float x : {0.0f, 1e-30f, 1e-6f, 0.4999999f, 0.5f, -0.5f, 9.0f, 87.0f, -87.0f})
    CHECK(ulps(kernels::tanh_f32(x), std::tanh(double(x))) <= 2.0);
  CHECK(kernels::tanh_f32(50.0f) == 1.0f);
  CHECK(kernels::tanh_f32(-50.0f) == -1.0f);
  CHECK(kernels::meta_sigmoid(-200.0f) < 1e-37f);
  CHECK(kernels::meta_sigmoid(200.0f) == 1.0f);
  CHECK(ulps(kernels::exp_f32(88.0f), std::exp(88.0)) <= 1.5);
  CHECK(ulps(kernels::exp_f32(-87.0f), std::exp(-87.0)) <= 1.5);
  CHECK(std::isnan(kernels::meta_sigmoid(std::nanf(""))));
  CHECK(std::isnan(kernels::tanh_f32(std::nanf(""))));
}
