// The caching device allocator (see context.h for the policy).
#include "engine/cuda/context.h"
#include "kernels/base/error.h"

namespace mq::cuda {

size_t CachingAllocator::size_class(size_t bytes) {
  constexpr size_t kSmallStep = 512;
  constexpr size_t kSmallMax = size_t{1} << 20;
  if (bytes == 0) bytes = 1;
  if (bytes <= kSmallMax) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  size_t p = size_t{1} << (63 - __builtin_clzll(bytes));  // largest power of two <= bytes
  size_t step = p / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  size_t cls = size_class(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.alloc_requests;
  void* ptr = nullptr;
  size_t block = cls;
  // Smallest cached block that fits and wastes at most half of itself.
  auto it = free_.lower_bound(cls);
  if (it != free_.end() && it->first <= 2 * cls) {
    block = it->first;
    ptr = it->second;
    free_.erase(it);
    stats_.cached -= block;
    ++stats_.cache_hits;
  } else {
    MQ_CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t e = cudaMalloc(&ptr, cls);
    ++stats_.cuda_malloc_calls;
    if (e == cudaErrorMemoryAllocation && !free_.empty()) {
      cudaGetLastError();  // clear it, give the cache back and try once more
      free_cached_locked();
      e = cudaMalloc(&ptr, cls);
      ++stats_.cuda_malloc_calls;
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("CUDA out of memory on cuda:{} allocating {} bytes ({} in use by tensors): {}; "
           "reduce the batch size",
           device_, bytes, stats_.allocated, cudaGetErrorString(e));
    }
  }
  live_.emplace(ptr, block);
  stats_.allocated += block;
  if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
  return ptr;
}

void CachingAllocator::release(void* ptr) noexcept {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return;  // not ours (never happens); don't throw from destructors
  size_t block = it->second;
  live_.erase(it);
  stats_.allocated -= block;
  free_.emplace(block, ptr);
  stats_.cached += block;
}

void CachingAllocator::free_cached_locked() {
  for (auto& [size, ptr] : free_) {
    cudaFree(ptr);  // implicitly synchronizes: no kernel still uses the block
    ++stats_.cuda_free_calls;
  }
  free_.clear();
  stats_.cached = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  MQ_CUDA_CHECK(cudaSetDevice(device_));
  free_cached_locked();
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_allocated = stats_.allocated;
}

}  // namespace mq::cuda
