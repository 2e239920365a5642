#include "engine/storage.h"

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <malloc.h>
#include <mutex>

#include "engine/cuda/cuda_api.h"
#include "kernels/base/error.h"

namespace mq {
namespace {
std::atomic<size_t> g_cpu_current{0};
std::atomic<size_t> g_cpu_peak{0};

// Activations are allocated and freed every step. glibc serves big blocks with mmap and returns
// them to the kernel on free, so every step page-faults its whole working set again (a fifth of
// a ResNet20 CPU step). Keeping big blocks in the heap makes freed memory reusable at once; the
// trim threshold is the largest glibc takes, since a MetaQuant LSTMFC step frees more than 1 GB
// at its end and trimming it made the next step fault it all back in (a third of that step).
void keep_freed_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
  });
}

// 64-byte alignment by hand: malloc a block 64 bytes longer and start the data at its first
// 64-byte boundary. aligned_alloc over-asks internally and hands back a chunk trimmed to the
// size, which a later request of the same size no longer fits, so every step's activations
// went to the heap's top and the heap grew to 2.6x the live tensors (ResNet20, batch 128).
// A freed block of this padded size serves the next request of the same size exactly.
size_t padded_size(size_t bytes) { return (bytes + 63) / 64 * 64 + 64; }
void* align64(void* block) {
  return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(block) + 63) / 64 * 64);
}

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
    keep_freed_memory();
    block = std::malloc(padded_size(bytes));
    if (!block) fail("out of CPU memory allocating {} bytes", bytes);
    data = align64(block);
    note_cpu_alloc(bytes);
  } else {
    data = cuda::device_alloc(bytes, dev.index);
  }
}

Storage::~Storage() {
  if (!data) return;
  if (device.is_cpu()) {
    std::free(block);
    g_cpu_current.fetch_sub(bytes);
  } else {
    cuda::device_free(data, bytes, device.index);
  }
}

CpuMemoryStats cpu_memory_stats() { return {g_cpu_current.load(), g_cpu_peak.load()}; }
void reset_cpu_peak_memory() { g_cpu_peak.store(g_cpu_current.load()); }

}  // namespace mq
