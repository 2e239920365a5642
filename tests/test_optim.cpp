#include <cmath>

#include "engine/optim/optimizer.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {
Tensor param(std::vector<double> v) {
  Tensor p = Tensor::from_vector(v, {int64_t(v.size())});
  p.set_requires_grad(true);
  return p;
}
void set_grad(Tensor& p, std::vector<double> g) {
  p.set_grad(Tensor::from_vector(g, {int64_t(g.size())}));
}
std::vector<double> vals(const Tensor& t) { return to_doubles(t); }
constexpr double kTol = 1e-12;  // f64 hand-computed values
}  // namespace

TEST_CASE("SGD step matches hand-computed values", "[optim]") {
  Tensor p = param({1, 2});
  SGD sgd({p}, 0.1);
  set_grad(p, {0.5, -1});
  sgd.step();
  REQUIRE(vals(p)[0] == Approx(0.95).epsilon(kTol));
  REQUIRE(vals(p)[1] == Approx(2.1).epsilon(kTol));
  REQUIRE(vals(p.grad()) == std::vector<double>{0.5, -1});  // step leaves .grad alone
  Tensor untouched = param({3});
  SGD none({untouched}, 0.1);
  none.step();  // no gradient: skipped, as PyTorch
  REQUIRE(vals(untouched)[0] == 3);
}

TEST_CASE("SGD with momentum and weight decay follows PyTorch (first buffer = d)", "[optim]") {
  Tensor p = param({1, 2});
  SGD sgd({p}, 0.1, 0.9, 0.01);
  set_grad(p, {0.5, -1});
  sgd.step();  // d = g + 0.01 p = [0.51, -0.98] = buf
  REQUIRE(vals(p)[0] == Approx(0.949).epsilon(kTol));
  REQUIRE(vals(p)[1] == Approx(2.098).epsilon(kTol));
  sgd.step();  // d = [0.50949, -0.97902]; buf = 0.9 buf + d = [0.96849, -1.86102]
  REQUIRE(vals(p)[0] == Approx(0.852151).epsilon(kTol));
  REQUIRE(vals(p)[1] == Approx(2.284102).epsilon(kTol));
  auto st = sgd.state_dict();
  REQUIRE(vals(st.at("0.momentum_buffer"))[1] == Approx(-1.86102).epsilon(kTol));
  REQUIRE(st.at("0.step").item() == 2);
}

TEST_CASE("Adam step matches PyTorch 1.13's formula", "[optim]") {
  Tensor p = param({1, -2, 0.25});
  Adam adam({p}, 0.1, 0.9, 0.999, 1e-8, 0.0);
  // step 1 moves every element by lr * m / (|g| + eps') = about lr * sign(g)
  set_grad(p, {0.5, 0.1, -3});
  adam.step();
  REQUIRE(vals(p)[0] == Approx(1 - (0.1 / 0.1) * 0.05 / (0.5 + 1e-8)).epsilon(kTol));
  // two more steps against the formula written out in double
  double pp = 1, m = 0, v = 0;
  {
    double g = 0.5;
    m = 0.1 * g, v = 0.001 * g * g;
    pp -= (0.1 / 0.1) * m / (std::sqrt(v) / std::sqrt(0.001) + 1e-8);
  }
  for (int t = 2; t <= 3; ++t) {
    double g = t == 2 ? -0.2 : 0.7;
    set_grad(p, {g, 0, 0});
    adam.step();
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
    pp -= (0.1 / bc1) * m / (std::sqrt(v) / std::sqrt(bc2) + 1e-8);
    REQUIRE(vals(p)[0] == Approx(pp).epsilon(kTol));
  }
  // weight decay is added to the gradient
  Tensor q = param({2});
  Adam wd({q}, 0.01, 0.9, 0.999, 1e-8, 0.5);
  set_grad(q, {0});
  wd.step();  // g = 0 + 0.5 * 2 = 1 -> moves by lr
  REQUIRE(vals(q)[0] == Approx(2 - 0.01 / (1 + 1e-8)).epsilon(kTol));
}

TEST_CASE("MetaQuant refine rules rewrite .grad, descend applies lr", "[optim]") {
  SECTION("SGD: d = g") {
    Tensor p = param({1, 2});
    SGD sgd({p}, 0.1);
    set_grad(p, {0.5, -1});
    sgd.refine();
    REQUIRE(vals(p.grad()) == std::vector<double>{0.5, -1});
    REQUIRE(vals(p) == std::vector<double>{1, 2});  // refine does not move p
    sgd.descend();
    REQUIRE(vals(p)[0] == Approx(0.95).epsilon(kTol));
  }
  SECTION("SGD-M: g += 5e-4 p; buf = 0.9 buf + g") {
    Tensor p = param({1, 2});
    auto opt = make_optimizer("SGD-M", {p}, 0.1, /*metaquant=*/true);
    set_grad(p, {0.5, -1});
    opt->refine();
    REQUIRE(vals(p.grad())[0] == Approx(0.5005).epsilon(kTol));
    REQUIRE(vals(p.grad())[1] == Approx(-0.999).epsilon(kTol));
    opt->descend();
    REQUIRE(vals(p)[0] == Approx(1 - 0.05005).epsilon(kTol));
    double p0 = vals(p)[0];
    set_grad(p, {0.5, -1});
    opt->refine();
    double d = 0.9 * 0.5005 + (0.5 + 5e-4 * p0);
    REQUIRE(vals(p.grad())[0] == Approx(d).epsilon(kTol));
    // .grad is a copy: rewriting it must not touch the momentum buffer
    p.grad().fill_(100);
    REQUIRE(vals(opt->state_dict().at("0.momentum_buffer"))[0] == Approx(d).epsilon(kTol));
  }
  SECTION("Adam: wd 5e-4, d = sqrt(bc2)/bc1 * m / (sqrt(v) + 1e-8)") {
    Tensor p = param({1, -0.5});
    auto opt = make_optimizer("Adam", {p}, 0.01, /*metaquant=*/true);
    double m0 = 0, v0 = 0, pw = 1;
    for (int t = 1; t <= 3; ++t) {
      double g = t == 2 ? 2e-9 : 0.5;  // a tiny gradient: eps placement matters
      set_grad(p, {g, 0.25});
      opt->refine();
      double gd = g + 5e-4 * pw;
      m0 = 0.9 * m0 + 0.1 * gd;
      v0 = 0.999 * v0 + 0.001 * gd * gd;
      double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
      double d = (std::sqrt(bc2) / bc1) * m0 / (std::sqrt(v0) + 1e-8);
      REQUIRE(vals(p.grad())[0] == Approx(d).epsilon(kTol));
      opt->descend();
      pw -= 0.01 * d;
      REQUIRE(vals(p)[0] == Approx(pw).epsilon(kTol));
    }
  }
}

TEST_CASE("optimizer state saves and restores", "[optim]") {
  auto run = [](Optimizer& opt, Tensor& p, int steps, int from) {
    for (int t = from; t < from + steps; ++t) {
      set_grad(p, {0.3 * t - 0.5, 0.1 * t});
      opt.step();
    }
  };
  for (std::string kind : {"SGD-M", "Adam"}) {
    INFO(kind);
    Tensor a = param({1, 2}), b;
    auto oa = make_optimizer(kind, {a}, 0.05, false);
    run(*oa, a, 2, 0);
    b = param(vals(a));
    auto ob = make_optimizer(kind, {b}, 999, false);
    ob->load_state_dict(oa->state_dict());
    REQUIRE(ob->lr() == 0.05);
    run(*oa, a, 3, 2);
    run(*ob, b, 3, 2);
    REQUIRE(vals(a) == vals(b));
    auto st = oa->state_dict();
    std::string key = kind == "Adam" ? "0.exp_avg" : "0.momentum_buffer";
    st[key] = Tensor::zeros({3}, DType::f64);
    REQUIRE_THROWS_WITH(ob->load_state_dict(st), Catch::Contains(key));
    REQUIRE_THROWS_WITH(ob->load_state_dict({}), Catch::Contains("missing 'lr'"));
  }
  Tensor p = param({1});
  REQUIRE_THROWS_WITH(make_optimizer("RMSprop", {p}, 0.1, false),
                      Catch::Contains("unknown optimizer 'RMSprop'"));
  REQUIRE_THROWS_WITH(SGD({p}, -1), Catch::Contains("learning rate"));
}

TEST_CASE("optimizers work in f32 like PyTorch", "[optim]") {
  Tensor p = Tensor::from_vector<float>({1.f, -1.f}, {2});
  p.set_requires_grad(true);
  Adam adam({p}, 1e-3);
  p.set_grad(Tensor::from_vector<float>({1e-3f, -2.f}, {2}));
  adam.step();
  auto v = p.to_vector<float>();
  REQUIRE(v[0] == Approx(1 - 1e-3).epsilon(1e-6));
  REQUIRE(v[1] == Approx(-1 + 1e-3).epsilon(1e-6));
  SGD sgd({p}, 0.5, 0.9, 0.0);
  sgd.step();
  REQUIRE(p.to_vector<float>()[1] == Approx(-1 + 1e-3 + 1.0).margin(1e-6));
}
