// CUDA mechanics beyond the per-op comparisons (those are the op harness's cuda mode,
// tests/op_harness.h): copies, misaligned views, deterministic reductions and convolutions, the
// TF32 switch, pinned uploads. Skipped (with a WARN) when no CUDA device is visible.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "engine/cuda/cuda_api.h"
#include "op_harness.h"

using namespace mq;
using namespace mq::test;

namespace {
constexpr double kTf32Rel = 2e-2;  // TF32 keeps 10 mantissa bits

Device gpu() { return Device::cuda(0); }

Tensor rg(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return randn(shape, seed, DType::f32, scale).set_requires_grad();
}

// A view of `base` starting `offset` elements in (misaligned for float4 when offset % 4 != 0).
Tensor offset_view(const Tensor& base, size_t offset, const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = base.impl().offset + offset;
  impl->shape = shape;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// matmul / conv2d on CUDA against the CPU through the harness, TF32 on or off.
void compare_tf32(const std::string& op, Shape a, Shape b, double b_scale, bool tf32, Tol tol) {
  OpCase c;
  c.op = op;
  c.params = fmt::format("{} {} tf32 {}", shape_str(a), shape_str(b), tf32 ? "on" : "off");
  c.build = from_inputs({normal(a, 48).grad(), normal(b, 49, b_scale).grad()},
                        [op](const std::vector<Tensor>& in) {
                          return std::vector<Tensor>{op == "matmul" ? matmul(in[0], in[1])
                                                                    : conv2d(in[0], in[1], {1, 1})};
                        });
  c.tf32 = tf32;
  c.cuda_tol = tol;
  for (const std::string& f : run_cuda(c)) FAIL_CHECK(f);
}
}  // namespace

TEST_CASE("cuda: device count and tensor copies", "[cuda]") {
  REQUIRE(cuda::device_count() >= 0);  // never throws, even without a driver
  if (!cuda_available_or_skip()) return;
  cuda::set_allow_tf32(false);
  Tensor a = randn({3, 5}, 1, DType::f32);
  Tensor g = a.to(gpu());
  REQUIRE(g.is_cuda());
  require_close(g.to(Device::cpu()), a, 0, 0, "round trip");
  require_close(g.clone(), a, 0, 0, "clone");
  Tensor z = Tensor::full({7}, 2.5, DType::f32, gpu());
  REQUIRE(z.to_vector<float>() == std::vector<float>(7, 2.5f));
  z.zero_();
  REQUIRE(z.to_vector<float>() == std::vector<float>(7, 0.0f));
  REQUIRE(Tensor::scalar(3.0).to(gpu()).item() == 3.0);
}

TEST_CASE("cuda: misaligned views take the scalar path correctly", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  Tensor base_a = randn({1031}, 11, DType::f32), base_b = randn({1031}, 12, DType::f32);
  Tensor ga = base_a.to(gpu()), gb = base_b.to(gpu());
  for (size_t off : {1, 2, 3, 4}) {
    Shape s{1024};
    Tensor ca = offset_view(base_a, off, s), cb = offset_view(base_b, off + 1, s);
    Tensor va = offset_view(ga, off, s), vb = offset_view(gb, off + 1, s);
    require_close(add(va, vb), add(ca, cb), kCudaAbs, kCudaRel, "add misaligned");
    require_close(tanh(va), tanh(ca), kCudaAbs, kCudaRel, "tanh misaligned");
    require_close(sum(va), sum(ca), kCudaAbs, kCudaRel, "sum misaligned");
    Tensor dc = ca.clone(), dg = va.clone();
    axpy_inplace(dc, 0.5, cb);
    axpy_inplace(dg, 0.5, vb);
    require_close(dg, dc, kCudaAbs, kCudaRel, "axpy misaligned");
  }
}

TEST_CASE("cuda: repeated reductions are bitwise identical", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  // Deterministic partial sums.
  Tensor big = randn({1 << 20}, 24, DType::f32).to(gpu());
  double first = sum(big).item();
  for (int i = 0; i < 5; ++i) REQUIRE(sum(big).item() == first);
}

TEST_CASE("cuda: deterministic conv2d is bitwise reproducible", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  cuda::set_deterministic(true);
  Tensor x = rg({8, 16, 16, 16}, 35).to(gpu()).detach().set_requires_grad();
  Tensor w = rg({16, 16, 3, 3}, 36).to(gpu()).detach().set_requires_grad();
  std::vector<float> y0, gw0;
  for (int i = 0; i < 3; ++i) {
    w.zero_grad();
    Tensor y = conv2d(x, w, {1, 1});
    sum(mul(y, y)).backward();
    if (i == 0) {
      y0 = y.to_vector<float>();
      gw0 = w.grad().to_vector<float>();
    } else {
      REQUIRE(y.to_vector<float>() == y0);
      REQUIRE(w.grad().to_vector<float>() == gw0);
    }
  }
  cuda::set_deterministic(false);
}

TEST_CASE("cuda: TF32 is opt-in and switchable", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  REQUIRE_FALSE(cuda::allow_tf32());
  compare_tf32("matmul", {96, 128}, {128, 80}, 1.0, true, {0.1, kTf32Rel});
  compare_tf32("conv2d", {2, 8, 8, 8}, {8, 8, 3, 3}, 0.3, true, {0.1, kTf32Rel});
  REQUIRE_FALSE(cuda::allow_tf32());  // the harness switched it back
  compare_tf32("matmul", {96, 128}, {128, 80}, 1.0, false, {kCudaAbs, kCudaRel});
}

TEST_CASE("cuda: pinned buffers upload asynchronously", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  const int64_t n = 3 * 32 * 32 * 16;
  cuda::PinnedBuffer buf(n * sizeof(float));
  REQUIRE(buf.size() == n * sizeof(float));
  Tensor dst = Tensor::empty({n}, DType::f32, gpu());
  for (int round = 0; round < 3; ++round) {
    buf.wait();  // the previous upload has read the buffer: safe to refill
    auto* p = static_cast<float*>(buf.data());
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i % 97) + round;
    buf.upload(dst.raw_data(), n * sizeof(float), 0);
    std::vector<float> got = dst.to_vector<float>();  // ordered after the upload on the stream
    REQUIRE(got[0] == static_cast<float>(round));
    REQUIRE(got[n - 1] == static_cast<float>((n - 1) % 97 + round));
  }
  cuda::PinnedBuffer moved = std::move(buf);
  REQUIRE(moved.data() != nullptr);
  REQUIRE(buf.data() == nullptr);
}
