// The caching device allocator: size classes, reuse on free, statistics, empty_cache, and no
// cudaMalloc (and no growth) over 100 repeated op sequences once warmed up.
#include "engine/cuda/cuda_api.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {
Device gpu() { return Device::cuda(0); }

// A small training-like step on elementwise ops and reductions only.
void elementwise_step(const Tensor& x_host) {
  Tensor x = x_host.to(gpu()).set_requires_grad();
  Tensor y = tanh(mul_scalar(add(relu(x), abs(x)), 0.5));
  Tensor loss = add(mean(mul(y, y)), max_abs(sub(y, x)));
  loss.backward();
  Tensor params = x.detach();  // an SGD-like update, outside autograd
  axpy_inplace(params, -0.1, x.grad());
  cuda::synchronize(0);
}

// A ResNet-like step: conv, batch norm, relu, pool, linear, cross-entropy, backward.
void nn_step(const Tensor& x_host, const Tensor& w_host, const Tensor& fc_host,
             const Tensor& labels_host, Tensor& rm, Tensor& rv) {
  Tensor x = x_host.to(gpu());
  Tensor w = w_host.to(gpu()).set_requires_grad();
  Tensor fc = fc_host.to(gpu()).set_requires_grad();
  Tensor labels = labels_host.to(gpu());
  Tensor h = relu(batch_norm(conv2d(x, w, {1, 1}), Tensor(), Tensor(), rm, rv, {}));
  Tensor logits = linear(global_avg_pool(h), fc, Tensor());
  Tensor loss = cross_entropy(logits, labels);
  loss.backward();
  Tensor params = w.detach();
  axpy_inplace(params, -0.1, w.grad());
  (void)count_correct(logits, labels);
  cuda::synchronize(0);
}
}  // namespace

TEST_CASE("cuda allocator: freed blocks are reused, stats add up", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  cuda::empty_cache(0);  // start from an empty cache: the first request is a fresh block
  auto before = cuda::memory_stats(0);
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1000}, DType::f32, gpu());  // 4000 bytes -> 4096 size class
    first = t.raw_data();
    auto during = cuda::memory_stats(0);
    REQUIRE(during.allocated == before.allocated + 4096);
    REQUIRE(during.alloc_requests == before.alloc_requests + 1);
  }
  auto after_free = cuda::memory_stats(0);
  REQUIRE(after_free.allocated == before.allocated);
  REQUIRE(after_free.cached >= 4096);
  {
    Tensor t = Tensor::empty({1000}, DType::f32, gpu());  // same class: the same block back
    REQUIRE(t.raw_data() == first);
    Tensor u = Tensor::empty({990}, DType::f32, gpu());   // 3960 bytes: same class, new block
    REQUIRE(u.raw_data() != first);
  }
  auto again = cuda::memory_stats(0);
  REQUIRE(again.cache_hits >= after_free.cache_hits + 1);
  REQUIRE(again.peak_allocated >= before.allocated + 2 * 4096);

  cuda::reset_peak_memory(0);
  REQUIRE(cuda::memory_stats(0).peak_allocated == cuda::memory_stats(0).allocated);

  cuda::empty_cache(0);
  auto emptied = cuda::memory_stats(0);
  REQUIRE(emptied.cached == 0);
  REQUIRE(emptied.allocated == before.allocated);
  REQUIRE(emptied.cuda_free_calls > again.cuda_free_calls);
}

TEST_CASE("cuda allocator: large blocks round to size classes and are reused", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  cuda::empty_cache(0);
  auto before = cuda::memory_stats(0);
  {
    Tensor t = Tensor::empty({(3 << 20) / 4 + 1}, DType::f32, gpu());  // just over 3 MiB
    auto s = cuda::memory_stats(0);
    // Classes above 1 MiB: four per power of two -> 3.5 MiB here, at most 25% over.
    REQUIRE(s.allocated - before.allocated == (size_t{7} << 19));
  }
  auto mid = cuda::memory_stats(0);
  for (int i = 0; i < 10; ++i) Tensor t = Tensor::empty({(3 << 20) / 4 + 1}, DType::f32, gpu());
  REQUIRE(cuda::memory_stats(0).cuda_malloc_calls == mid.cuda_malloc_calls);
}

TEST_CASE("cuda allocator: no cudaMalloc and no growth over repeated elementwise steps",
          "[cuda]") {
  if (!cuda_available_or_skip()) return;
  Tensor x = randn({64, 1000}, 1, DType::f32);
  for (int i = 0; i < 3; ++i) elementwise_step(x);  // warm up the cache
  auto warm = cuda::memory_stats(0);
  for (int i = 0; i < 100; ++i) {
    elementwise_step(x);
    auto s = cuda::memory_stats(0);
    REQUIRE(s.allocated == warm.allocated);  // every step frees what it took
  }
  auto done = cuda::memory_stats(0);
  REQUIRE(done.cuda_malloc_calls == warm.cuda_malloc_calls);
  REQUIRE(done.allocated + done.cached == warm.allocated + warm.cached);
  REQUIRE(done.alloc_requests > warm.alloc_requests);
}

TEST_CASE("cuda allocator: no cudaMalloc and no growth over repeated NN steps", "[cuda]") {
  if (!cuda_available_or_skip()) return;
  Tensor x = randn({16, 3, 16, 16}, 2, DType::f32);
  Tensor w = randn({16, 3, 3, 3}, 3, DType::f32, 0.3);
  Tensor fc = randn({10, 16}, 4, DType::f32, 0.3);
  std::vector<int64_t> lab(16);
  for (int i = 0; i < 16; ++i) lab[i] = i % 10;
  Tensor labels = Tensor::from_vector(lab, {16});
  Tensor rm = Tensor::zeros({16}, DType::f32, gpu());
  Tensor rv = Tensor::full({16}, 1.0, DType::f32, gpu());
  for (int i = 0; i < 3; ++i) nn_step(x, w, fc, labels, rm, rv);  // algorithm search + cache
  auto warm = cuda::memory_stats(0);
  for (int i = 0; i < 100; ++i) nn_step(x, w, fc, labels, rm, rv);
  auto done = cuda::memory_stats(0);
  REQUIRE(done.cuda_malloc_calls == warm.cuda_malloc_calls);
  REQUIRE(done.allocated == warm.allocated);
  REQUIRE(done.allocated + done.cached == warm.allocated + warm.cached);
}
