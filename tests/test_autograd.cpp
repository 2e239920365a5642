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

TEST_CASE("the graph keeps only what backward functions saved", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({-1, 2, -3, 4}, {4}).set_requires_grad();
  // add's output feeds relu only, and relu keeps its own output: once the forward drops the
  // handle, nothing holds the sum's memory.
  Tensor a = add(x, x);
  std::weak_ptr<Storage> a_storage = a.impl().storage;
  Tensor y = mul_scalar(relu(a), 3.0);
  a = Tensor();
  REQUIRE(a_storage.expired());
  sum(y).backward();
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{0, 6, 0, 6});
}

TEST_CASE("retain_grad on an intermediate, kept or dropped", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  Tensor kept = mul(x, x);
  kept.retain_grad();
  Tensor dropped = mul_scalar(x, 2.0);
  dropped.retain_grad();
  Tensor loss = sum(add(mul(kept, dropped), dropped));
  dropped = Tensor();  // its gradient has nowhere to go; backward still runs
  loss.backward();
  // d/dkept = dropped = 2x; d/dx = 2x * 2x + x^2 * 2 + 2 = 6x^2 + 2
  REQUIRE(kept.grad().to_vector<double>() == std::vector<double>{2, 4});
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{8, 26});
}

TEST_CASE("a leaf that stops requiring grad before backward gets none", "[autograd]") {
  Tensor w = Tensor::from_vector<double>({1, 2}, {2}).set_requires_grad();
  Tensor b = Tensor::from_vector<double>({3, 4}, {2}).set_requires_grad();
  Tensor loss = sum(mul(w, b));
  b.set_requires_grad(false);
  loss.backward();
  REQUIRE(w.grad().to_vector<double>() == std::vector<double>{3, 4});
  REQUIRE_FALSE(b.grad().defined());
}

TEST_CASE("CPU tensor memory is 64-byte aligned", "[tensor]") {
  for (int64_t n : {1, 3, 15, 16, 17, 1000, 4097, 262145}) {
    Tensor t = Tensor::empty({n});
    REQUIRE(reinterpret_cast<uintptr_t>(t.data<float>()) % 64 == 0);
  }
}

TEST_CASE("a deep graph dropped without backward is freed without recursion", "[autograd]") {
  Tensor x = Tensor::from_vector<double>({1}, {1}).set_requires_grad();
  {
    Tensor y = x;
    for (int i = 0; i < 300000; ++i) y = add_scalar(y, 1e-6);
    REQUIRE(y.requires_grad());
  }  // the whole chain of nodes goes here
  REQUIRE(x.grad_fn() == nullptr);
}
