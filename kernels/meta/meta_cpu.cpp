// CPU loops of the meta-network kernels (see meta.h); the math is in meta_math.h.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/base/error.h"
#include "kernels/meta/meta.h"

namespace mq::kernels {
namespace {

// Fixed row partition for reductions: results independent of the thread count.
constexpr int64_t kReduceRows = 4096;

int64_t blocks_of(int64_t n) { return (n + kReduceRows - 1) / kReduceRows; }

}  // namespace

size_t meta_scaled_workspace_bytes(int64_t) { return kMetaCudaMaxBlocks * sizeof(double); }

size_t meta_lstm_workspace_bytes(int64_t n, int64_t hidden) {
  const int64_t rpb = meta_lstm_cuda_rows_per_block(n);
  const int64_t blocks = std::max<int64_t>(1, (n + rpb - 1) / rpb);
  return static_cast<size_t>(blocks * (9 * hidden + 1)) * sizeof(double);
}

template <class T>
void meta_scaled_forward_cpu(const T* s, const T* u, const T* v, int64_t n, T* G) {
  const T sv = s[0];
  if (v) {
#pragma omp parallel for schedule(dynamic, 16384) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) G[i] = meta_scaled_value(sv, u[i], v[i]);
  } else {
#pragma omp parallel for schedule(dynamic, 16384) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) G[i] = meta_scaled_value(sv, u[i], T(1));
  }
}

template <class T>
void meta_scaled_backward_cpu(const T* dG, const T* u, const T* v, int64_t n, T* ds) {
  const int64_t blocks = blocks_of(n);
  std::vector<double> part(blocks, 0.0);
#pragma omp parallel for schedule(dynamic) if (blocks > 4)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i0 = b * kReduceRows, i1 = std::min(n, i0 + kReduceRows);
    double acc = 0;
    for (int64_t i = i0; i < i1; ++i)
      acc += double(dG[i]) * double(u[i]) * (v ? double(v[i]) : 1.0);
    part[b] = acc;
  }
  double total = 0;
  for (double x : part) total += x;
  ds[0] += static_cast<T>(total);
}

#define MQ_META_INSTANTIATE(T)                                                                    \
  template void meta_scaled_forward_cpu<T>(const T*, const T*, const T*, int64_t, T*);           \
  template void meta_scaled_backward_cpu<T>(const T*, const T*, const T*, int64_t, T*);
MQ_META_INSTANTIATE(float)
MQ_META_INSTANTIATE(double)
#undef MQ_META_INSTANTIATE

}  // namespace mq::kernels
