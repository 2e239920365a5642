#pragma once
// The CUDA backend as seen from plain C++: no CUDA headers here. Implemented in engine/cuda/*
// when mq is built with CUDA; otherwise engine/cuda_stub.cpp provides versions that throw a clear
// mq::Error, so every caller links and reports "built without CUDA" at run time.
#include <cstddef>
#include <cstdint>

namespace mq::cuda {

bool built_with_cuda();
int device_count();                 // 0 when none is visible or CUDA is not built in
// Device memory from the per-device caching allocator (never cudaMalloc once warmed up).
void* device_alloc(size_t bytes, int device);
void device_free(void* ptr, size_t bytes, int device);
// Copies between host and device memory on the device's stream, then synchronizes.
void copy_host_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_host(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t bytes, int device);
void memset_device(void* dst, int value, size_t bytes, int device);
void synchronize(int device);
// The device's one stream (a cudaStream_t), on which every op of that device runs.
void* stream(int device);

// ---- caching allocator ----
struct MemoryStats {
  size_t allocated = 0;        // bytes handed out and not yet freed (size-class rounded)
  size_t cached = 0;           // bytes held in the free lists, ready for reuse
  size_t peak_allocated = 0;   // high-water mark of `allocated` since the last reset
  uint64_t cuda_malloc_calls = 0;  // cudaMalloc calls made by the allocator so far
  uint64_t cuda_free_calls = 0;
  uint64_t alloc_requests = 0;     // device_alloc calls (cache hits + misses)
  uint64_t cache_hits = 0;
};
MemoryStats memory_stats(int device);
void reset_peak_memory(int device);
// Returns every cached (free) block to the driver. Blocks in use are untouched.
void empty_cache(int device);

// ---- numerics ----
// TF32 tensor-core math for f32 GEMM and convolutions: off by default (exact f32 results).
void set_allow_tf32(bool allow);
bool allow_tf32();
// Restricts cuDNN convolutions to deterministic algorithms (bitwise-reproducible runs).
void set_deterministic(bool on);
bool deterministic();

// ---- pinned host memory for input batches ----
// Page-locked host buffer: host->device copies from it run asynchronously on the device's stream.
// upload() enqueues the copy and records an event; wait() blocks until that copy has read the
// buffer, so the producer (data loader) calls wait() before refilling it. Not copyable.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  size_t size() const { return bytes_; }
  // Asynchronous copy of the first `bytes` of the buffer to device memory `dst`.
  void upload(void* dst, size_t bytes, int device);
  void wait();

 private:
  void release() noexcept;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  void* event_ = nullptr;  // cudaEvent_t of the last upload
  int event_device_ = -1;
};

}  // namespace mq::cuda
