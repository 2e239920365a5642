// Every op of ops.h on CUDA against the CPU backend on random inputs: forward values and the
// gradient of every input, TF32 off. Skipped (with a WARN) when no CUDA device is visible.
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "engine/cuda/cuda_api.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {
constexpr double kCudaAbs = 1e-5;  // CUDA f32 vs CPU f32: absolute ...
constexpr double kCudaRel = 1e-4;  // ... plus relative
constexpr double kTf32Rel = 2e-2;  // TF32 keeps 10 mantissa bits

Device gpu() { return Device::cuda(0); }

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

// A copy of t on `device`, with t's requires_grad flag, without history.
Tensor leaf_on(const Tensor& t, Device device) {
  Tensor c = t.detach().to(device);
  if (c.same_storage(t)) c = t.detach().clone();
  if (t.requires_grad()) c.set_requires_grad();
  return c;
}

// Runs f on CPU and CUDA copies of `inputs` (f32; those that require grad get gradients of
// sum(f(...) * R), R fixed random), and compares the output and every gradient.
void compare_op(const OpFn& f, const std::vector<Tensor>& inputs, const std::string& what,
                double atol = kCudaAbs, double rtol = kCudaRel) {
  INFO(what);
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : inputs) {
    cpu_in.push_back(leaf_on(t, Device::cpu()));
    gpu_in.push_back(leaf_on(t, gpu()));
  }
  Tensor yc = f(cpu_in), yg = f(gpu_in);
  REQUIRE(yg.is_cuda());
  require_close(yg, yc, atol, rtol, what + " forward");
  bool any_grad = false;
  for (const Tensor& t : inputs) any_grad |= t.requires_grad();
  if (!any_grad) return;
  Tensor r = randn(yc.shape(), 4242, DType::f32);
  sum(mul(yc, r)).backward();
  sum(mul(yg, r.to(gpu()))).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    REQUIRE(gpu_in[i].grad().defined());
    require_close(gpu_in[i].grad(), cpu_in[i].grad(), atol, rtol,
                  fmt::format("{} gradient of input {}", what, i));
  }
}

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

TEST_CASE("cuda: elementwise ops and gradients match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4, 5}, Shape{(1 << 20) + 3}}) {
    std::string tag = fmt::format(" {}", shape_str(s));
    auto x = [&](uint64_t seed) { return rg(s, seed); };
    compare_op([](auto& in) { return add(in[0], in[1]); }, {x(1), x(2)}, "add" + tag);
    compare_op([](auto& in) { return sub(in[0], in[1]); }, {x(1), x(2)}, "sub" + tag);
    compare_op([](auto& in) { return mul(in[0], in[1]); }, {x(1), x(2)}, "mul" + tag);
    compare_op([](auto& in) { return add_scalar(in[0], 0.75); }, {x(3)}, "add_scalar" + tag);
    compare_op([](auto& in) { return mul_scalar(in[0], -1.5); }, {x(3)}, "mul_scalar" + tag);
    compare_op([](auto& in) { return neg(in[0]); }, {x(4)}, "neg" + tag);
    compare_op([](auto& in) { return relu(in[0]); }, {x(5)}, "relu" + tag);
    compare_op([](auto& in) { return tanh(in[0]); }, {x(6)}, "tanh" + tag);
    compare_op([](auto& in) { return abs(in[0]); }, {x(7)}, "abs" + tag);
    compare_op([](auto& in) { return sign(in[0]); }, {x(8)}, "sign" + tag);
    compare_op([](auto& in) { return mul(in[0], in[0]); }, {x(9)}, "x*x" + tag);
  }
  // sign(0) = 0 and relu's gradient at 0 agree with the CPU.
  Tensor zeros = Tensor::zeros({6}, DType::f32).set_requires_grad();
  compare_op([](auto& in) { return sign(in[0]); }, {zeros}, "sign(0)");
  compare_op([](auto& in) { return relu(in[0]); }, {zeros}, "relu(0)");
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

TEST_CASE("cuda: in-place axpy and add match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (Shape s : {Shape{5}, Shape{4, 33}, Shape{100003}}) {
    Tensor d = randn(s, 1, DType::f32), src = randn(s, 2, DType::f32);
    Tensor dc = d.clone(), dg = d.to(gpu()), sg = src.to(gpu());
    axpy_inplace(dc, -0.25, src);
    axpy_inplace(dg, -0.25, sg);
    require_close(dg, dc, kCudaAbs, kCudaRel, "axpy_inplace " + shape_str(s));
    add_inplace(dc, src);
    add_inplace(dg, sg);
    require_close(dg, dc, kCudaAbs, kCudaRel, "add_inplace " + shape_str(s));
    axpy_inplace(dg, 1.0, dg);  // aliasing source and destination
    axpy_inplace(dc, 1.0, dc);
    require_close(dg, dc, kCudaAbs, kCudaRel, "axpy_inplace aliased");
  }
}

TEST_CASE("cuda: reductions and their gradients match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (Shape s : {Shape{1}, Shape{5, 7}, Shape{1000}, Shape{3, 1 << 18}, Shape{(1 << 22) + 5}}) {
    std::string tag = fmt::format(" {}", shape_str(s));
    compare_op([](auto& in) { return sum(in[0]); }, {rg(s, 21)}, "sum" + tag);
    compare_op([](auto& in) { return mean(in[0]); }, {rg(s, 22)}, "mean" + tag);
    compare_op([](auto& in) { return max_abs(in[0]); }, {rg(s, 23)}, "max_abs" + tag);
  }
  // Ties: the gradient is split evenly among every element with |x| == max, with its sign.
  Tensor ties = Tensor::from_vector<float>({1.f, -3.f, 3.f, 0.5f, -3.f, 2.f}, {6});
  ties.set_requires_grad();
  compare_op([](auto& in) { return max_abs(in[0]); }, {ties}, "max_abs ties");
  // Repeated reductions give bitwise-identical results (deterministic partial sums).
  Tensor big = randn({1 << 20}, 24, DType::f32).to(gpu());
  double first = sum(big).item();
  for (int i = 0; i < 5; ++i) REQUIRE(sum(big).item() == first);
}

TEST_CASE("cuda: conv2d forward and gradients match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  cuda::set_allow_tf32(false);
  struct Case {
    Shape x, w;
    Conv2dParams p;
  };
  for (const Case& c : {Case{{2, 3, 8, 8}, {8, 3, 3, 3}, {1, 1}},
                        Case{{2, 4, 9, 9}, {6, 4, 3, 3}, {2, 1}},
                        Case{{3, 5, 8, 8}, {4, 5, 1, 1}, {2, 0}},
                        Case{{1, 2, 7, 5}, {3, 2, 3, 3}, {1, 0}},
                        Case{{4, 16, 16, 16}, {16, 16, 3, 3}, {1, 1}},
                        Case{{4, 16, 16, 16}, {32, 16, 3, 3}, {2, 1}}}) {
    std::string tag = fmt::format("conv2d x{} w{} stride {} pad {}", shape_str(c.x),
                                  shape_str(c.w), c.p.stride, c.p.padding);
    Conv2dParams p = c.p;
    compare_op([p](auto& in) { return conv2d(in[0], in[1], p); }, {rg(c.x, 31), rg(c.w, 32, 0.3)},
               tag);
    // The cached plan is reused: a second call with the same shape agrees too.
    compare_op([p](auto& in) { return conv2d(in[0], in[1], p); }, {rg(c.x, 33), rg(c.w, 34, 0.3)},
               tag + " (cached plan)");
  }
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

TEST_CASE("cuda: matmul and linear match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  cuda::set_allow_tf32(false);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, std::tuple{5, 7, 3}, std::tuple{64, 33, 70},
                         std::tuple{128, 64, 10}, std::tuple{3, 200, 1}}) {
    std::string tag = fmt::format(" {}x{}x{}", m, k, n);
    compare_op([](auto& in) { return matmul(in[0], in[1]); }, {rg({m, k}, 41), rg({k, n}, 42)},
               "matmul" + tag);
    compare_op([](auto& in) { return linear(in[0], in[1], in[2]); },
               {rg({m, k}, 43), rg({n, k}, 44), rg({n}, 45)}, "linear" + tag);
    compare_op([](auto& in) { return linear(in[0], in[1], Tensor()); },
               {rg({m, k}, 46), rg({n, k}, 47)}, "linear without bias" + tag);
  }
}

TEST_CASE("cuda: TF32 is opt-in and switchable", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  REQUIRE_FALSE(cuda::allow_tf32());
  cuda::set_allow_tf32(true);
  compare_op([](auto& in) { return matmul(in[0], in[1]); }, {rg({96, 128}, 48), rg({128, 80}, 49)},
             "matmul tf32", 0.1, kTf32Rel);
  compare_op([](auto& in) { return conv2d(in[0], in[1], {1, 1}); },
             {rg({2, 8, 8, 8}, 50), rg({8, 8, 3, 3}, 51, 0.3)}, "conv2d tf32", 0.1, kTf32Rel);
  cuda::set_allow_tf32(false);
  compare_op([](auto& in) { return matmul(in[0], in[1]); }, {rg({96, 128}, 48), rg({128, 80}, 49)},
             "matmul after tf32 off");
}

TEST_CASE("cuda: global average pool matches the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (Shape s : {Shape{2, 3, 4, 4}, Shape{5, 64, 8, 8}, Shape{1, 1, 1, 1}, Shape{3, 2, 7, 9}})
    compare_op([](auto& in) { return global_avg_pool(in[0]); }, {rg(s, 51)},
               "global_avg_pool " + shape_str(s));
}

TEST_CASE("cuda: batch norm (train and eval) matches the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (Shape s : {Shape{4, 3, 5, 5}, Shape{16, 16, 8, 8}, Shape{8, 6}, Shape{2, 64, 4, 4}}) {
    int64_t c = s[1];
    for (bool affine : {true, false}) {
      for (bool training : {true, false}) {
        std::string tag = "batch_norm " + shape_str(s) + (affine ? " affine" : "") +
                          (training ? " train" : " eval");
        Tensor rm = randn({c}, 61, DType::f32, 0.1);
        Tensor rv = add_scalar(abs(randn({c}, 62, DType::f32)), 0.5);
        Tensor rm_c = rm.clone(), rv_c = rv.clone(), rm_g = rm.to(gpu()), rv_g = rv.to(gpu());
        BatchNormParams p{training, 0.1, 1e-5};
        std::vector<Tensor> inputs;
        inputs.reserve(3);
        inputs.push_back(rg(s, 63, 2.0));
        if (affine) {
          inputs.push_back(rg({c}, 64));
          inputs.push_back(rg({c}, 65));
        }
        // Inputs with a large mean exercise the variance computation.
        inputs[0] = add_scalar(inputs[0].detach(), 3.0).set_requires_grad();
        compare_op(
            [&](auto& in) {
              bool on_gpu = in[0].is_cuda();
              Tensor& m = on_gpu ? rm_g : rm_c;
              Tensor& v = on_gpu ? rv_g : rv_c;
              Tensor w = affine ? in[1] : Tensor(), b = affine ? in[2] : Tensor();
              return batch_norm(in[0], w, b, m, v, p);
            },
            inputs, tag);
        require_close(rm_g, rm_c, kCudaAbs, kCudaRel, tag + " running_mean");
        require_close(rv_g, rv_c, kCudaAbs, kCudaRel, tag + " running_var");
      }
    }
  }
}

TEST_CASE("cuda: cross-entropy and count_correct match the CPU", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  for (auto [n, c] : {std::pair{1, 2}, std::pair{8, 10}, std::pair{128, 10}, std::pair{37, 100},
                      std::pair{4, 1000}}) {
    std::vector<int64_t> labels(n);
    for (int64_t i = 0; i < n; ++i) labels[i] = (i * 7 + 3) % c;
    Tensor l64 = Tensor::from_vector(labels, {n});
    std::vector<int32_t> labels32(labels.begin(), labels.end());
    Tensor l32 = Tensor::from_vector(labels32, {n});
    std::string tag = fmt::format(" {}x{}", n, c);
    for (const Tensor& lab : {l64, l32}) {
      std::string t = fmt::format("{} {}", tag, dtype_name(lab.dtype()));
      Tensor lab_c = lab, lab_g = lab.to(gpu());
      compare_op(
          [&](auto& in) { return cross_entropy(in[0], in[0].is_cuda() ? lab_g : lab_c); },
          {rg({n, c}, 71, 3.0)}, "cross_entropy" + t);
      Tensor logits = randn({n, c}, 72, DType::f32);
      REQUIRE(count_correct(logits.to(gpu()), lab_g) == count_correct(logits, lab_c));
    }
  }
  // Large logits stay finite (stable log-softmax); ties pick the first maximum.
  Tensor big = Tensor::from_vector<float>({1000.f, -1000.f, 999.f, 5.f, 5.f, 1.f}, {2, 3});
  Tensor lab = Tensor::from_vector<int64_t>({0, 0}, {2});
  compare_op([&](auto& in) { return cross_entropy(in[0], in[0].is_cuda() ? lab.to(gpu()) : lab); },
             {big.set_requires_grad()}, "cross_entropy large logits");
  REQUIRE(count_correct(big.detach().to(gpu()), lab.to(gpu())) == 2);
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
