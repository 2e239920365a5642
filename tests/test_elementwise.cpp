#include <cmath>

#include "op_test.h"

using namespace mq;
using namespace mq::test;

TEST_CASE("elementwise ops match plain formulas", "[ops]") {
  for (Shape shape : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4, 5}, Shape{40000}}) {
    Tensor a = randn(shape, 1, DType::f32), b = randn(shape, 2, DType::f32);
    auto va = a.to_vector<float>(), vb = b.to_vector<float>();
    auto check = [&](const Tensor& got, auto formula, const char* what) {
      std::vector<float> want(va.size());
      for (size_t i = 0; i < va.size(); ++i) want[i] = formula(va[i], vb[i]);
      require_close(got, Tensor::from_vector(want, shape), kF32Abs, kF32Rel, what);
    };
    check(add(a, b), [](float x, float y) { return x + y; }, "add");
    check(sub(a, b), [](float x, float y) { return x - y; }, "sub");
    check(mul(a, b), [](float x, float y) { return x * y; }, "mul");
    check(add_scalar(a, 0.5), [](float x, float) { return x + 0.5f; }, "add_scalar");
    check(mul_scalar(a, -3), [](float x, float) { return -3 * x; }, "mul_scalar");
    check(neg(a), [](float x, float) { return -x; }, "neg");
    check(relu(a), [](float x, float) { return x > 0 ? x : 0.f; }, "relu");
    check(tanh(a), [](float x, float) { return std::tanh(x); }, "tanh");
    check(abs(a), [](float x, float) { return std::fabs(x); }, "abs");
    check(sign(a), [](float x, float) { return float((x > 0) - (x < 0)); }, "sign");
  }
  Tensor z = Tensor::zeros({3});
  REQUIRE(sign(z).to_vector<float>() == std::vector<float>{0, 0, 0});
}

TEST_CASE("elementwise ops reject mismatched inputs", "[ops]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(add(a, b), Catch::Contains("shape mismatch"));
  REQUIRE_THROWS_WITH(mul(a, Tensor::zeros({2, 3}, DType::f64)), Catch::Contains("dtype"));
  REQUIRE_THROWS_WITH(relu(Tensor::zeros({2}, DType::i32)), Catch::Contains("f32 or f64"));
  REQUIRE_THROWS_WITH(add(a, Tensor()), Catch::Contains("undefined"));
}

TEST_CASE("elementwise gradients match finite differences", "[ops][grad]") {
  Shape s{3, 4};
  auto x = [&](uint64_t seed) { return randn(s, seed).set_requires_grad(); };
  gradcheck([](auto& in) { return add(in[0], in[1]); }, {x(1), x(2)}, "add");
  gradcheck([](auto& in) { return sub(in[0], in[1]); }, {x(1), x(2)}, "sub");
  gradcheck([](auto& in) { return mul(in[0], in[1]); }, {x(1), x(2)}, "mul");
  gradcheck([](auto& in) { return add_scalar(in[0], 2.0); }, {x(3)}, "add_scalar");
  gradcheck([](auto& in) { return mul_scalar(in[0], -1.5); }, {x(3)}, "mul_scalar");
  gradcheck([](auto& in) { return neg(in[0]); }, {x(4)}, "neg");
  gradcheck([](auto& in) { return relu(in[0]); }, {x(5)}, "relu");
  gradcheck([](auto& in) { return tanh(in[0]); }, {x(6)}, "tanh");
  gradcheck([](auto& in) { return abs(in[0]); }, {x(7)}, "abs");
  gradcheck([](auto& in) { return sign(in[0]); }, {x(8)}, "sign");
  // the same input used twice accumulates
  gradcheck([](auto& in) { return mul(in[0], in[0]); }, {x(9)}, "x*x");
}

TEST_CASE("reductions match plain formulas and finite differences", "[ops][grad]") {
  Tensor a = randn({5, 7}, 3);
  auto v = a.to_vector<double>();
  double s = 0, m = 0;
  for (double e : v) s += e, m = std::max(m, std::fabs(e));
  REQUIRE(sum(a).item() == Approx(s).epsilon(1e-12));
  REQUIRE(mean(a).item() == Approx(s / v.size()).epsilon(1e-12));
  REQUIRE(max_abs(a).item() == m);
  gradcheck([](auto& in) { return sum(in[0]); }, {randn({4, 3}, 1).set_requires_grad()}, "sum");
  gradcheck([](auto& in) { return mean(in[0]); }, {randn({4, 3}, 2).set_requires_grad()}, "mean");
  gradcheck([](auto& in) { return max_abs(in[0]); }, {randn({4, 3}, 3).set_requires_grad()},
            "max_abs");
  // ties share the gradient evenly, as PyTorch's max()
  Tensor t = Tensor::from_vector<double>({1, -3, 3, 2}, {4}).set_requires_grad();
  max_abs(t).backward();
  REQUIRE(t.grad().to_vector<double>() == std::vector<double>{0, -0.5, 0.5, 0});
}
