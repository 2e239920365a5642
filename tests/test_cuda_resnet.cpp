// A full ResNet20 training step on the GPU against the same step on the CPU: same initial
// state, same batches, SGD; every step's loss within 1e-4 relative (TF32 off).
#include <random>

#include "engine/cuda/cuda_api.h"
#include "engine/optim/optimizer.h"
#include "models/resnet_cifar.h"
#include "op_test.h"

using namespace mq;

namespace {
constexpr double kStepLossRel = 1e-4;

std::vector<double> train_losses(Device device, int steps) {
  ResNetCifar model(20, 10, 3, /*seed=*/7);
  model.to(device);
  SGD opt(model.parameters(), 0.05, 0.9);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Tensor x = test::randn({16, 3, 32, 32}, 100 + s, DType::f32).to(device);
    std::vector<int64_t> ys(16);
    std::mt19937 rng(200 + s);
    for (auto& y : ys) y = rng() % 10;
    Tensor y = Tensor::from_vector(ys, {16}, device);
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    losses.push_back(loss.item());
  }
  return losses;
}
}  // namespace

TEST_CASE("cuda: ResNet20 training steps match the CPU", "[cuda]") {
  if (!test::cuda_available_or_skip()) return;
  cuda::set_allow_tf32(false);
  auto cpu = train_losses(Device::cpu(), 3);
  auto gpu = train_losses(Device::cuda(0), 3);
  for (size_t i = 0; i < cpu.size(); ++i) {
    INFO("step " << i << ": cpu " << cpu[i] << " cuda " << gpu[i]);
    REQUIRE(std::abs(cpu[i] - gpu[i]) <= kStepLossRel * std::abs(cpu[i]));
  }
}

TEST_CASE("cuda: no cudaMalloc after the first ResNet20 step", "[cuda]") {
  if (!test::cuda_available_or_skip()) return;
  Device dev = Device::cuda(0);
  ResNetCifar model(20, 10, 3, 1);
  model.to(dev);
  SGD opt(model.parameters(), 0.01);
  Tensor x = test::randn({32, 3, 32, 32}, 1, DType::f32).to(dev);
  Tensor y = Tensor::from_vector(std::vector<int64_t>(32, 3), {32}, dev);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
  };
  step();
  cuda::synchronize(0);
  uint64_t after_first = cuda::memory_stats(0).cuda_malloc_calls;
  for (int i = 0; i < 20; ++i) step();
  cuda::synchronize(0);
  REQUIRE(cuda::memory_stats(0).cuda_malloc_calls == after_first);
}
