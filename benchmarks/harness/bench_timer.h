#pragma once
// Timing for kernel benchmarks (plain C++; the CUDA side lives in bench_timer.cu, with a stub in
// bench_timer_stub.cpp when mq is built without CUDA). Every measurement runs `warmup` untimed
// calls, then `repeat` timed ones, and reports the median and the spread.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace mq::bench {

struct Timing {
  double median_s = 0, min_s = 0, max_s = 0;
  // (max - min) / median: the relative spread of the repeats
  double spread() const { return median_s > 0 ? (max_s - min_s) / median_s : 0; }
};
Timing summarize(std::vector<double> seconds);

// Wall clock (steady_clock) around each call.
Timing time_cpu(const std::function<void()>& f, int warmup, int repeat);

// CUDA events recorded on `stream` around each call (f must enqueue its work on that stream).
Timing time_cuda(const std::function<void()>& f, int warmup, int repeat, void* stream);
// Device buffers and an asynchronous device-to-device copy on `stream`, for the benchmarks.
void* cuda_bench_alloc(size_t bytes);
void cuda_bench_free(void* p);
void cuda_bench_copy(void* dst, const void* src, size_t bytes, void* stream);
void cuda_bench_upload(void* dst, const void* src, size_t bytes);
void* cuda_bench_stream();  // the stream the benchmark runs on (the engine's stream of device 0)
std::string cuda_device_name();

}  // namespace mq::bench
