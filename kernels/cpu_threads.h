#pragma once
// How the CPU kernels split [0, n) over OpenMP threads. Sizes up to kCpuParallelMin run on the
// calling thread without a parallel region: even an if(false) region costs ~1.3 us a call here,
// more than the whole op on a small tensor (a ResNet20 layer's weight, biases, batch-norm
// parameters, optimizer updates).
#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace mq::kernels {

constexpr int64_t kCpuParallelMin = 1 << 15;  // below this one thread is faster

inline int cpu_threads_for(int64_t n) { return n > kCpuParallelMin ? omp_get_max_threads() : 1; }

struct Segment {
  int64_t lo, hi;
};
// Thread t of k's contiguous range of [0, n): boundaries on multiples of 16 elements, so every
// thread but the first starts 64-byte aligned.
inline Segment segment_of(int64_t n, int64_t t, int64_t k) {
  const int64_t blocks = (n + 15) / 16;
  return {std::min(n, blocks * t / k * 16), std::min(n, blocks * (t + 1) / k * 16)};
}
// The calling thread's range inside a parallel region.
inline Segment thread_segment(int64_t n) {
  return segment_of(n, omp_get_thread_num(), omp_get_num_threads());
}

// body(lo, hi, thread) on each of `nthreads` threads' segments of [0, n). One thread gets all of
// [0, n) directly, also when the caller is inside some other parallel region.
template <class Body>
void parallel_segments(int64_t n, int nthreads, Body&& body) {
  if (nthreads <= 1) return body(int64_t(0), n, 0);
#pragma omp parallel num_threads(nthreads)
  {
    const Segment s = thread_segment(n);
    body(s.lo, s.hi, omp_get_thread_num());
  }
}

// body(lo, hi) over [0, n) in chunks of `chunk` elements (a multiple of 16), handed out to the
// threads as they come free: a thread on a core that another process also wants simply takes
// fewer chunks instead of holding up the others at the end of a fixed split. Only for bodies
// whose result does not depend on which thread runs which chunk (no per-thread partial sums).
template <class Body>
void parallel_chunks(int64_t n, int64_t chunk, int nthreads, Body&& body) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (nthreads <= 1 || chunks <= 1) return body(int64_t(0), n);
#pragma omp parallel for num_threads(nthreads) schedule(dynamic)
  for (int64_t c = 0; c < chunks; ++c) body(c * chunk, std::min(n, (c + 1) * chunk));
}

}  // namespace mq::kernels
