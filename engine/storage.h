#pragma once
// Refcounted raw memory on one device. CPU memory is 64-byte aligned; CUDA memory comes from
// the caching allocator of engine/cuda. Tensors share a Storage through std::shared_ptr.
#include <cstddef>
#include <memory>

#include "engine/device.h"

namespace mq {

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  void* block = nullptr;  // CPU: what malloc returned (data is the 64-byte aligned point in it)

  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

// Bytes of CPU tensor memory currently allocated, and the high-water mark since the last reset.
struct CpuMemoryStats {
  size_t current = 0;
  size_t peak = 0;
};
CpuMemoryStats cpu_memory_stats();
void reset_cpu_peak_memory();

}  // namespace mq
