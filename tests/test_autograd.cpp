#include "op_test.h"

using namespace mq;
using namespace mq::test;

TEST_CASE("autograd accumulates, retains and releases", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3}).set_requires_grad();
  Tensor y = mul(x, x);
  y.retain_grad();
  Tensor loss = sum(y);
  loss.backward();
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{2, 4, 6});
  REQUIRE(y.grad().to_vector<double>() == std::vector<double>{1, 1, 1});
  // second backward through a released graph is a clear error
  REQUIRE_THROWS_WITH(loss.backward(), Catch::Contains("second time"));
  // gradients accumulate across backward calls
  sum(x).backward();
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{3, 5, 7});
  x.zero_grad();
  REQUIRE_FALSE(x.grad().defined());
}

TEST_CASE("no-grad scope records nothing", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  {
    NoGradGuard ng;
    Tensor y = mul(x, x);
    REQUIRE_FALSE(y.requires_grad());
  }
  REQUIRE(mul(x, x).requires_grad());
  REQUIRE_FALSE(stop_gradient(x).requires_grad());
}

TEST_CASE("deep chains backward without recursion", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1}, {1}).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add_scalar(y, 1e-6);
  sum(y).backward();
  REQUIRE(x.grad().item() == 1.0);
}

TEST_CASE("reshape shares storage and routes gradients", "[autograd]") {
  Tensor x = randn({2, 6}, 1).set_requires_grad();
  Tensor v = x.reshape({3, -1});
  REQUIRE(v.shape() == Shape{3, 4});
  REQUIRE(v.same_storage(x));
  gradcheck([](auto& in) { return tanh(in[0].reshape({4, 3})); }, {x}, "reshape");
  REQUIRE_THROWS_WITH(x.reshape({5, -1}), Catch::Contains("do not divide"));
}

TEST_CASE("tensor access errors are clear", "[tensor]") {
  Tensor t = Tensor::zeros({2, 2});
  REQUIRE_THROWS_WITH(t.data<double>(), Catch::Contains("f32[2, 2]"));
  REQUIRE_THROWS_WITH(Tensor().shape(), Catch::Contains("undefined"));
  REQUIRE_THROWS_WITH(Tensor::empty({2}, DType::f32, Device::cuda(0)), Catch::Contains("CUDA"));
  REQUIRE(t.to(DType::i32).dtype() == DType::i32);
  REQUIRE(Tensor::full({3}, 2.5).to_vector<float>() == std::vector<float>{2.5f, 2.5f, 2.5f});
}
