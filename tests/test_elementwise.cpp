// Elementwise ops and reductions beyond their formulas, gradient checks and CUDA comparisons
// (those are the op harness's, tests/op_cases_elementwise.cpp): exact edge values and argument
// errors.
#include <cmath>

#include "op_test.h"

using namespace mq;
using namespace mq::test;

TEST_CASE("sign(0) is exactly 0", "[ops]") {
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

TEST_CASE("max_abs ties share the gradient evenly, as PyTorch's max()", "[ops][grad]") {
  Tensor t = Tensor::from_vector<double>({1, -3, 3, 2}, {4}).set_requires_grad();
  max_abs(t).backward();
  REQUIRE(t.grad().to_vector<double>() == std::vector<double>{0, -0.5, 0.5, 0});
}
