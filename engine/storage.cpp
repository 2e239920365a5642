#include "engine/storage.h"

#include <atomic>
#include <cstdlib>

#include "engine/cuda/cuda_api.h"
#include "engine/error.h"

namespace mq {
namespace {
std::atomic<size_t> g_cpu_current{0};
std::atomic<size_t> g_cpu_peak{0};

void note_cpu_alloc(size_t bytes) {
  size_t now = g_cpu_current.fetch_add(bytes) + bytes;
  size_t peak = g_cpu_peak.load();
  while (now > peak && !g_cpu_peak.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    size_t rounded = (bytes + 63) / 64 * 64;
    data = std::aligned_alloc(64, rounded);
    if (!data) fail("out of CPU memory allocating {} bytes", bytes);
    note_cpu_alloc(bytes);
  } else {
    data = cuda::device_alloc(bytes, dev.index);
  }
}

Storage::~Storage() {
  if (!data) return;
  if (device.is_cpu()) {
    std::free(data);
    g_cpu_current.fetch_sub(bytes);
  } else {
    cuda::device_free(data, bytes, device.index);
  }
}

CpuMemoryStats cpu_memory_stats() { return {g_cpu_current.load(), g_cpu_peak.load()}; }
void reset_cpu_peak_memory() { g_cpu_peak.store(g_cpu_current.load()); }

}  // namespace mq
