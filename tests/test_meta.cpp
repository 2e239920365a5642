// Meta networks and the fused meta-gradient op: names and init, fused vs plain-op values and
// phi gradients, f64 gradient checks, the split-gradient plumbing, the MetaQuant weight op and
// the lr schedules.
#include <cmath>

#include "engine/autograd.h"
#include "kernels/meta/meta_math.h"
#include "meta/meta_op.h"
#include "meta/quantized_layers.h"
#include "meta/trainers.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {

MetaNetConfig cfg(MetaKind k, int64_t h, int num_fc = 3, MetaAct a = MetaAct::none) {
  MetaNetConfig c;
  c.kind = k;
  c.hidden = h;
  c.num_fc = num_fc;
  c.act = a;
  return c;
}

// A random LSTM state of n rows.
LstmState random_state(int64_t n, int64_t h, uint64_t seed, DType dt) {
  return {randn({n, h}, seed, dt, 0.5), randn({n, h}, seed + 1, dt, 0.5)};
}

// Values and phi gradients (of sum(G * R)) of the fused op and the plain-op reference.
void check_fused_vs_reference(const MetaNet& net, int64_t n, const LstmState& state, double tol) {
  const DType dt = net.parameters().front().dtype();
  Tensor g = randn({n}, 11, dt, 0.01), x = uniform({n}, 12, -1, 1, dt);
  Tensor R = randn({n}, 13, dt);
  auto run = [&](bool fused, std::vector<Tensor>& grads, LstmState& out) {
    for (Tensor p : net.parameters()) p.zero_grad();
    Tensor G = fused ? meta_gradient(net, g, x, state, &out)
                     : meta_gradient_reference(net, g, x, state, &out);
    sum(mul(G, R)).backward();
    grads.clear();
    for (const Tensor& p : net.parameters()) grads.push_back(p.grad().clone());
    return G.detach();
  };
  std::vector<Tensor> gf, gr;
  LstmState sf, sr;
  Tensor Gf = run(true, gf, sf), Gr = run(false, gr, sr);
  require_close(Gf, Gr, tol * 1e-2, tol, "G");
  auto names = net.named_parameters();
  for (size_t k = 0; k < gf.size(); ++k) require_close(gf[k], gr[k], tol * 1e-2, tol, names[k].first);
  if (net.config().kind == MetaKind::lstm_fc) {
    require_close(sf.h, sr.h, tol * 1e-2, tol, "h'");
    require_close(sf.c, sr.c, tol * 1e-2, tol, "c'");
  }
}

}  // namespace

TEST_CASE("meta nets: names, shapes and PyTorch default init bounds", "[meta]") {
  MetaNet fc(cfg(MetaKind::fc_grad, 100));
  auto p = fc.named_parameters();
  REQUIRE(p.size() == 2);
  REQUIRE(p[0].first == "linear1.weight");
  REQUIRE(p[0].second.shape() == Shape{100, 1});
  REQUIRE(p[1].first == "linear2.weight");
  REQUIRE(p[1].second.shape() == Shape{1, 100});
  for (double v : to_doubles(p[0].second)) REQUIRE(std::abs(v) <= 1.0);  // fan_in 1
  for (double v : to_doubles(p[1].second)) REQUIRE(std::abs(v) <= 0.1);  // fan_in 100

  MetaNet multi(cfg(MetaKind::multi_fc, 8, 4));
  auto m = multi.named_parameters();
  REQUIRE(m.size() == 4);
  REQUIRE(m[0].first == "network.Linear0.weight");
  REQUIRE(m[2].first == "network.Linear2.weight");
  REQUIRE(m[2].second.shape() == Shape{8, 8});
  REQUIRE(m[3].second.shape() == Shape{1, 8});

  MetaNet lstm(cfg(MetaKind::lstm_fc, 6));
  auto l = lstm.named_parameters();
  const char* names[] = {"lstm1.weight_ih_l0", "lstm1.weight_hh_l0", "lstm1.bias_ih_l0",
                         "lstm1.bias_hh_l0", "fc1.weight", "fc1.bias"};
  REQUIRE(l.size() == 6);
  for (size_t k = 0; k < 6; ++k) REQUIRE(l[k].first == names[k]);
  REQUIRE(l[1].second.shape() == Shape{24, 6});
  for (const auto& [n, t] : l)
    for (double v : to_doubles(t)) REQUIRE(std::abs(v) <= 1 / std::sqrt(6.0));

  // Same seed, same weights; another seed differs.
  MetaNet a(cfg(MetaKind::multi_fc, 8), 5), b(cfg(MetaKind::multi_fc, 8), 5),
      c(cfg(MetaKind::multi_fc, 8), 6);
  require_close(a.parameters()[1], b.parameters()[1], 0, 0);
  REQUIRE(to_doubles(a.parameters()[1]) != to_doubles(c.parameters()[1]));

  REQUIRE(parse_meta_kind("FC-Grad") == MetaKind::fc_grad);
  REQUIRE(parse_meta_kind("multifc") == MetaKind::multi_fc);
  REQUIRE(parse_meta_kind("LSTMFC") == MetaKind::lstm_fc);
  REQUIRE_THROWS_WITH(parse_meta_kind("GRU"), Catch::Contains("FC-Grad, MultiFC, LSTMFC"));
  REQUIRE(parse_meta_act("") == MetaAct::none);
  REQUIRE(parse_meta_act("relu") == MetaAct::relu);
  REQUIRE_THROWS(MetaNet(cfg(MetaKind::multi_fc, 8, 1)));
  REQUIRE_THROWS(MetaNet(cfg(MetaKind::lstm_fc, 8, 3, MetaAct::relu)));
}

TEST_CASE("meta gradient: fused equals plain ops (values and phi gradients)", "[meta]") {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-10 : 2e-4;
    SECTION(std::string("FC-Grad linear ") + dtype_name(dt)) {
      check_fused_vs_reference(MetaNet(cfg(MetaKind::fc_grad, 16), 1, dt), 300, {}, tol);
    }
    SECTION(std::string("MultiFC linear num_fc 2..4 ") + dtype_name(dt)) {
      for (int k = 2; k <= 4; ++k)
        check_fused_vs_reference(MetaNet(cfg(MetaKind::multi_fc, 16, k), 2, dt), 300, {}, tol);
    }
    SECTION(std::string("MultiFC / FC-Grad relu and tanh ") + dtype_name(dt)) {
      for (MetaAct a : {MetaAct::relu, MetaAct::tanh}) {
        check_fused_vs_reference(MetaNet(cfg(MetaKind::multi_fc, 16, 3, a), 3, dt), 200, {}, tol);
        check_fused_vs_reference(MetaNet(cfg(MetaKind::fc_grad, 16, 2, a), 3, dt), 200, {}, tol);
      }
    }
    SECTION(std::string("LSTMFC, zero state and carried state ") + dtype_name(dt)) {
      MetaNet net(cfg(MetaKind::lstm_fc, 12), 4, dt);
      check_fused_vs_reference(net, 300, {}, tol);
      check_fused_vs_reference(net, 300, random_state(300, 12, 7, dt), tol);
      // Several reduction blocks (4096 rows each).
      check_fused_vs_reference(net, 9000, random_state(9000, 12, 8, dt), tol * 10);
    }
  }
}

TEST_CASE("meta gradient: f64 gradient checks of the fused op", "[meta][gradcheck]") {
  Tensor g = randn({40}, 21, DType::f64, 0.3), x = uniform({40}, 22, -1, 1, DType::f64);
  for (MetaNetConfig c : {cfg(MetaKind::fc_grad, 5), cfg(MetaKind::multi_fc, 5, 2),
                          cfg(MetaKind::multi_fc, 5, 4), cfg(MetaKind::lstm_fc, 5)}) {
    MetaNet net(c, 9, DType::f64);
    INFO(meta_kind_str(c.kind) << " num_fc " << c.num_fc);
    gradcheck([&](const std::vector<Tensor>&) { return meta_gradient(net, g, x); },
              net.parameters(), meta_kind_str(c.kind));
    if (c.kind == MetaKind::lstm_fc) {
      LstmState st = random_state(40, 5, 23, DType::f64);
      gradcheck([&](const std::vector<Tensor>&) { return meta_gradient(net, g, x, st); },
                net.parameters(), "LSTMFC with state");
    }
  }
}

TEST_CASE("meta gradient: LSTM state advances one step per call", "[meta]") {
  MetaNet net(cfg(MetaKind::lstm_fc, 4), 3);
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
  MetaNet net(cfg(MetaKind::multi_fc, 6), 3, DType::f64);
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
  require_close(m1, sub(W1.detach(), mul_scalar(W1.grad(), lr)), 1e-14, 0, "Wm value");
  Tensor R1 = randn({2, 2}, 9), R2 = randn({6}, 10);
  W1.zero_grad();
  W2.zero_grad();
  add(sum(mul(m1, R1)), sum(mul(tanh(m2), R2))).backward();
  std::vector<Tensor> fused;
  for (const Tensor& p : net.parameters()) fused.push_back(p.grad().clone());
  require_close(W1.grad(), R1, 1e-14, 0, "identity into W");
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
