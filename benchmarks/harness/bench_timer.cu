// CUDA side of the benchmark timer: events around each call, raw buffers, D2D copies.
#include <cuda_runtime.h>

#include "engine/cuda/cuda_api.h"
#include "benchmarks/harness/bench_timer.h"
#include "kernels/cuda/cuda_check.h"

namespace mq::bench {
Timing time_cuda(const std::function<void()>& f, int warmup, int repeat, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t start, stop;
  MQ_CUDA_CHECK(cudaEventCreate(&start));
  MQ_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> seconds;
  for (int i = 0; i < repeat; ++i) {
    MQ_CUDA_CHECK(cudaEventRecord(start, s));
    f();
    MQ_CUDA_CHECK(cudaEventRecord(stop, s));
    MQ_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    MQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    seconds.push_back(ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return summarize(std::move(seconds));
}

void* cuda_bench_alloc(size_t bytes) {
  void* p = nullptr;
  MQ_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}
void cuda_bench_free(void* p) { cudaFree(p); }
void cuda_bench_copy(void* dst, const void* src, size_t bytes, void* stream) {
  MQ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                static_cast<cudaStream_t>(stream)));
}
void cuda_bench_upload(void* dst, const void* src, size_t bytes) {
  MQ_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void* cuda_bench_stream() { return cuda::stream(0); }
std::string cuda_device_name() {
  cudaDeviceProp prop{};
  MQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.name;
}

}  // namespace mq::bench
