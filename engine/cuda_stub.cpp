// Used when mq is built without CUDA: every entry point of engine/cuda/cuda_api.h reports it.
#if !MQ_WITH_CUDA
#include "engine/cuda/cuda_api.h"
#include "kernels/base/error.h"

namespace mq::cuda {
namespace {
[[noreturn]] void no_cuda() {
  fail("this mq was built without CUDA; rebuild on a machine with the CUDA toolkit "
       "(cmake -DMQ_CUDA=ON) or use --device cpu");
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
void* device_alloc(size_t, int) { no_cuda(); }
void device_free(void*, size_t, int) {}
void copy_host_to_device(void*, const void*, size_t, int) { no_cuda(); }
void copy_device_to_host(void*, const void*, size_t, int) { no_cuda(); }
void copy_device_to_device(void*, const void*, size_t, int) { no_cuda(); }
void memset_device(void*, int, size_t, int) { no_cuda(); }
void synchronize(int) {}
void* stream(int) { no_cuda(); }

MemoryStats memory_stats(int) { no_cuda(); }
void reset_peak_memory(int) { no_cuda(); }
void empty_cache(int) {}

void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
void set_deterministic(bool) {}
bool deterministic() { return false; }

PinnedBuffer::PinnedBuffer(size_t) { no_cuda(); }
PinnedBuffer::~PinnedBuffer() = default;
PinnedBuffer::PinnedBuffer(PinnedBuffer&&) noexcept {}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&&) noexcept { return *this; }
void PinnedBuffer::upload(void*, size_t, int) { no_cuda(); }
void PinnedBuffer::wait() {}
void PinnedBuffer::release() noexcept {}

}  // namespace mq::cuda
#endif
