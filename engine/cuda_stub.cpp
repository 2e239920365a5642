// Used when mq is built without CUDA: every entry point of engine/cuda/cuda_api.h reports it.
#if !MQ_WITH_CUDA
#include "engine/cuda/cuda_api.h"
#include "engine/error.h"

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

}  // namespace mq::cuda
#endif
