// conv2d_bn_eval: the fused inference op gives the bits of the separate ops (conv2d, eval-mode
// batch_norm, add, relu) on every conv path, falls back to them (autograd included) when a
// gradient is needed or the dtype is f64, and rejects bad batch-norm parameters clearly; a
// ResNet in eval mode, which uses it, gives the same logits with and without autograd. Its
// formula, gradient check and CUDA comparison are the op harness's (tests/op_cases_conv.cpp).
#include <cstring>
#include <string>

#include "models/resnet_cifar.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {

struct FusedCase {
  int64_t n, c, h, w, k, r, stride, pad;
};

BatchNormEvalParams random_bn(int64_t k, uint64_t seed, DType dt, bool affine) {
  BatchNormEvalParams bn;
  if (affine) {
    bn.weight = uniform({k}, seed, 0.5, 1.5, dt);
    bn.bias = randn({k}, seed + 1, dt, 0.3);
  }
  bn.running_mean = randn({k}, seed + 2, dt, 0.5);
  bn.running_var = uniform({k}, seed + 3, 0.2, 2.0, dt);
  bn.eps = 1e-5;
  return bn;
}

Tensor separate_ops(const Tensor& x, const Tensor& w, Conv2dParams p, const BatchNormEvalParams& bn,
                    const Tensor& residual, bool relu_after) {
  Tensor rm = bn.running_mean, rv = bn.running_var;
  Tensor y = batch_norm(conv2d(x, w, p), bn.weight, bn.bias, rm, rv, {false, 0.1, bn.eps});
  if (residual.defined()) y = add(y, residual);
  return relu_after ? relu(y) : y;
}

int64_t bit_mismatches(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto* pa = static_cast<const unsigned char*>(a.raw_data());
  const auto* pb = static_cast<const unsigned char*>(b.raw_data());
  const size_t width = a.dtype() == DType::f32 ? 4 : 8;
  int64_t count = 0;
  for (int64_t i = 0; i < a.numel(); ++i) count += std::memcmp(pa + i * width, pb + i * width, width) != 0;
  return count;
}

}  // namespace

TEST_CASE("conv2d_bn_eval equals the separate ops bit for bit", "[nn]") {
  NoGradGuard no_grad;
  const std::vector<FusedCase> cases = {
      // n  c   h   w   k  r  stride pad
      {2, 3, 32, 32, 16, 3, 1, 1},   // ResNet's first conv
      {2, 16, 16, 16, 16, 3, 1, 1},  // stride 1, padded: the epilogue in the output copy
      {2, 16, 16, 16, 32, 3, 2, 1},  // stride 2
      {2, 16, 16, 16, 32, 1, 2, 0},  // 1x1 stride 2 (the shortcut)
      {2, 24, 8, 8, 10, 1, 1, 0},    // 1x1 stride 1: the epilogue as its own pass
      {1, 5, 7, 9, 6, 3, 1, 0},      // unpadded, odd sizes
  };
  for (const auto& g : cases)
    for (DType dt : {DType::f32, DType::f64})
      for (int variant = 0; variant < 4; ++variant) {
        const bool with_residual = variant & 1, relu_after = variant & 2;
        Tensor x = randn({g.n, g.c, g.h, g.w}, 51, dt);
        Tensor w = randn({g.k, g.c, g.r, g.r}, 52, dt, 0.2);
        const Conv2dParams p{g.stride, g.pad};
        const BatchNormEvalParams bn = random_bn(g.k, 53, dt, variant != 1);
        const int64_t oh = (g.h + 2 * g.pad - g.r) / g.stride + 1;
        const int64_t ow = (g.w + 2 * g.pad - g.r) / g.stride + 1;
        Tensor res = with_residual ? randn({g.n, g.k, oh, ow}, 54, dt) : Tensor();
        INFO("c" << g.c << " " << g.h << "x" << g.w << " k" << g.k << " " << g.r << "x" << g.r
                 << " stride " << g.stride << " pad " << g.pad << " " << dtype_name(dt)
                 << " residual " << with_residual << " relu " << relu_after);
        CHECK(bit_mismatches(conv2d_bn_eval(x, w, p, bn, res, relu_after),
                             separate_ops(x, w, p, bn, res, relu_after)) == 0);
      }
}

TEST_CASE("conv2d_bn_eval records history when a gradient is needed", "[nn][grad]") {
  // Its gradients (the separate ops' backward) are the op harness's gradient check.
  Tensor xf = randn({2, 3, 6, 6}, 65, DType::f32).set_requires_grad();
  Tensor y = conv2d_bn_eval(xf, randn({4, 3, 3, 3}, 66, DType::f32), {1, 1},
                            random_bn(4, 67, DType::f32, true), Tensor(), true);
  REQUIRE(y.requires_grad());
}

TEST_CASE("conv2d_bn_eval rejects bad batch-norm parameters", "[nn]") {
  NoGradGuard no_grad;
  Tensor x = randn({1, 3, 5, 5}, 71, DType::f32), w = randn({4, 3, 3, 3}, 72, DType::f32);
  BatchNormEvalParams bn = random_bn(4, 73, DType::f32, true);
  BatchNormEvalParams short_mean = bn;
  short_mean.running_mean = randn({3}, 74, DType::f32);
  REQUIRE_THROWS_WITH(conv2d_bn_eval(x, w, {1, 1}, short_mean, Tensor(), true),
                      Catch::Contains("running_mean") && Catch::Contains("4 elements"));
  BatchNormEvalParams no_var = bn;
  no_var.running_var = Tensor();
  REQUIRE_THROWS_WITH(conv2d_bn_eval(x, w, {1, 1}, no_var, Tensor(), true),
                      Catch::Contains("running_var"));
  REQUIRE_THROWS_WITH(conv2d_bn_eval(x, w, {1, 1}, bn, randn({1, 4, 3, 3}, 75, DType::f32), true),
                      Catch::Contains("residual"));
  REQUIRE_THROWS_WITH(conv2d_bn_eval(x, randn({4, 2, 3, 3}, 76, DType::f32), {1, 1}, bn, Tensor(), true),
                      Catch::Contains("input channels"));
}

TEST_CASE("ResNet eval logits are the same fused and through autograd", "[models]") {
  ResNetCifar model(8, 10, 3, /*seed=*/5);
  // Move the running statistics and affine parameters off their defaults.
  for (auto& [name, t] : model.state_dict())
    if (name.find("running_var") != std::string::npos || name.find("bn") != std::string::npos) {
      if (t.dtype() != DType::f32) continue;
      Tensor r = uniform(t.shape(), std::hash<std::string>{}(name), 0.5, 1.5, DType::f32);
      std::memcpy(t.raw_data(), r.raw_data(), size_t(t.numel()) * sizeof(float));
    }
  model.eval();
  Tensor x = randn({4, 3, 16, 16}, 81, DType::f32);
  Tensor fused;
  {
    NoGradGuard no_grad;
    fused = model.forward(x);
  }
  Tensor with_graph = model.forward(x);  // parameters require grad: the separate ops
  REQUIRE(with_graph.requires_grad());
  CHECK(bit_mismatches(fused, with_graph) == 0);
}
