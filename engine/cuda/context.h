#pragma once
// Per-device state of the CUDA backend: one stream, cuBLAS and cuDNN handles bound to it, and
// the caching allocator. Internal to engine/cuda (includes CUDA headers).
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "engine/cuda/cuda_api.h"
#include "engine/cuda/cuda_check.h"

namespace mq::cuda {

// Caching device allocator. Requests are rounded up to size classes (512 B steps up to 1 MiB,
// then four classes per power of two, <= 25% waste); a freed block goes to a free list and is
// handed out again for a request of up to its size (and at least half of it). Reuse is safe
// without events because all work on a device is ordered on its one stream. cudaMalloc happens
// only on a miss; when it fails, the cache is emptied and the malloc retried once.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes);
  void release(void* ptr) noexcept;
  void empty_cache();
  MemoryStats stats() const;
  void reset_peak();
  static size_t size_class(size_t bytes);

 private:
  void free_cached_locked();  // cudaFree of every cached block; mu_ held
  int device_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;        // block size -> cached block
  std::unordered_map<void*, size_t> live_;   // block in use -> its size
  MemoryStats stats_;
};

struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  CachingAllocator allocator;
  void* cublas_workspace = nullptr;  // from the allocator, so cuBLAS never mallocs mid-step
  bool cublas_tf32 = false;          // math mode last set on the handle

  explicit DeviceContext(int d) : device(d), allocator(d) {}
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;
};

// The context of `device`, created on first use; also makes `device` current on this thread.
DeviceContext& context(int device);
// The context's cuBLAS handle with the math mode matching allow_tf32().
cublasHandle_t cublas_handle(DeviceContext& ctx);

// Scratch device memory from the allocator for the duration of a scope (workspaces).
class DeviceBuffer {
 public:
  DeviceBuffer(DeviceContext& ctx, size_t bytes)
      : ctx_(&ctx), ptr_(bytes ? ctx.allocator.allocate(bytes) : nullptr), bytes_(bytes) {}
  ~DeviceBuffer() {
    if (ptr_) ctx_->allocator.release(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  DeviceContext* ctx_;
  void* ptr_;
  size_t bytes_;
};

}  // namespace mq::cuda
