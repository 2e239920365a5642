// Without CUDA the CUDA timing entry points report it (mqbench checks the device first).
#if !MQ_WITH_CUDA
#include "kernels/base/error.h"
#include "benchmarks/harness/bench_timer.h"

namespace mq::bench {
namespace {
[[noreturn]] void no_cuda() { fail("this mq was built without CUDA; use --device cpu"); }
}  // namespace
Timing time_cuda(const std::function<void()>&, int, int, void*) { no_cuda(); }
void* cuda_bench_alloc(size_t) { no_cuda(); }
void cuda_bench_free(void*) {}
void cuda_bench_copy(void*, const void*, size_t, void*) { no_cuda(); }
void cuda_bench_upload(void*, const void*, size_t) { no_cuda(); }
void* cuda_bench_stream() { no_cuda(); }
std::string cuda_device_name() { return "none"; }
}  // namespace mq::bench
#endif
