// CUDA side of the benchmark timer: events around each call, raw buffers, D2D copies.
#include <cuda_runtime.h>

#include "engine/cuda/cuda_api.h"
#include "kernels/bench/bench_timer.h"
#include "kernels/quantize/quantize.h"

namespace mq::bench {
namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) kernels::fail_quantize_cuda(what, cudaGetErrorString(err));
}
}  // namespace

Timing time_cuda(const std::function<void()>& f, int warmup, int repeat, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    check(cudaEventRecord(start, s), "cudaEventRecord");
    f();
    check(cudaEventRecord(stop, s), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    seconds.push_back(ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return summarize(std::move(seconds));
}

void* cuda_bench_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}
void cuda_bench_free(void* p) { cudaFree(p); }
void cuda_bench_copy(void* dst, const void* src, size_t bytes, void* stream) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync");
}
void cuda_bench_upload(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
}
void* cuda_bench_stream() { return cuda::stream(0); }
std::string cuda_device_name() {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  return prop.name;
}

}  // namespace mq::bench
