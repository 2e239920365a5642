// CUDA quantizers against the CPU reference: identical codes, W~ / scales / gradients /
// calibration within 1e-6 relative (the shared math makes them equal in practice).
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/quantize_op.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {
constexpr double kCudaRel = 1e-6;
constexpr double kCudaAbs = 1e-7;  // for values near zero (gradients of saturated tanh)

void compare_devices(const Tensor& w_cpu, QuantSpec spec, uint64_t seed) {
  INFO(spec_str(spec) << " on " << w_cpu.describe());
  const Device gpu = Device::cuda(0);
  Tensor Wc = w_cpu.clone().set_requires_grad();
  Tensor Wg = w_cpu.to(gpu).set_requires_grad();
  Tensor G = randn(w_cpu.shape(), seed, DType::f32);
  auto rc = quantize(Wc, spec);
  auto rg = quantize(Wg, spec);
  rc.w_hat.backward(G);
  rg.w_hat.backward(G.to(gpu));
  REQUIRE(rg.w_hat.device() == gpu);
  require_close(rg.scale.to(Device::cpu()), rc.scale, 0, kCudaRel, "scale");
  require_close(rg.w_tilde.to(Device::cpu()), rc.w_tilde, 0, kCudaRel, "W~");
  // identical codes: W^ is a function of the code and the scale
  auto hc = rc.w_hat.to_vector<float>(), hg = rg.w_hat.to_vector<float>();
  auto sc = rc.scale.to_vector<float>();
  const int64_t per = w_cpu.numel() / rc.scale.numel();
  for (size_t i = 0; i < hc.size(); ++i) {
    INFO("element " << i << " cpu " << hc[i] << " cuda " << hg[i]);
    REQUIRE(std::fabs(hg[i] - hc[i]) <= kCudaRel * std::fabs(sc[i / per]) + 1e-7);
  }
  require_close(Wg.grad().to(Device::cpu()), Wc.grad(), kCudaAbs, kCudaRel, "STE gradient");
  require_close(calibration(Wg, spec).to(Device::cpu()), calibration(Wc, spec), kCudaAbs, kCudaRel,
                "calibration");
}

std::vector<QuantSpec> specs() {
  std::vector<QuantSpec> s;
  for (int b = 1; b <= 8; ++b) s.push_back({Quantizer::dorefa, b});
  s.push_back({Quantizer::bwn, 1});
  s.push_back({Quantizer::bwn_f, 1});
  s.push_back({Quantizer::ternary, 2});
  return s;
}
}  // namespace

TEST_CASE("CUDA quantizers match the CPU on random weights", "[quantize][cuda]") {
  if (!cuda_available_or_skip()) return;
  uint64_t seed = 1;
  // vector and scalar paths: slices multiple of 4 or not, tails, many blocks
  for (Shape shape : {Shape{1}, Shape{3}, Shape{16, 3, 3, 3}, Shape{64, 32, 3, 3}, Shape{10, 65},
                      Shape{7, 5779}, Shape{1 << 20}, Shape{3, 333333}})
    for (QuantSpec spec : specs()) {
      compare_devices(randn(shape, seed, DType::f32, 0.1), spec, seed + 50);
      compare_devices(randn(shape, seed + 9, DType::f32, 3.0), spec, seed + 60);
      ++seed;
    }
}

TEST_CASE("CUDA quantizers match the CPU on edge cases", "[quantize][cuda]") {
  if (!cuda_available_or_skip()) return;
  for (QuantSpec spec : specs()) {
    compare_devices(Tensor::zeros({4, 3}), spec, 1);
    compare_devices(Tensor::from_vector<float>({-2.5f}, {1}), spec, 2);
    compare_devices(
        Tensor::from_vector<float>({1e30f, -1e30f, 0, 0.25f, -0.25f, 1, -1, 1e-30f, 0}, {9}), spec,
        3);
    compare_devices(Tensor::from_vector<float>({0.5f, -0.5f, 0.5f, 0.5f}, {2, 2}), spec, 4);
    // a stretch of -0.0 as long as a CUDA block's first sweep: that block's max is a zero, which
    // must not take the sign bit into the atomicMax over float bits
    std::vector<float> w = randn({64, 16, 3, 3}, 5, DType::f32, 0.1).to_vector<float>();
    std::fill(w.begin(), w.begin() + 4096, -0.0f);
    compare_devices(Tensor::from_vector<float>(w, {64, 16, 3, 3}), spec, 5);
  }
}

TEST_CASE("CUDA quantize rejects f64 and bad bits", "[quantize][cuda]") {
  if (!cuda_available_or_skip()) return;
  Tensor W = randn({8}, 1, DType::f32).to(Device::cuda(0));
  REQUIRE_THROWS_WITH(quantize(W, {Quantizer::dorefa, 9}), Catch::Contains("use 1..8"));
  REQUIRE_THROWS_WITH(quantize(randn({8}, 1, DType::f64).to(Device::cuda(0)), {}),
                      Catch::Contains("f32"));
}
