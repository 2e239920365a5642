#pragma once
// Max pooling's window scan, shared by the CPU loops (engine/cpu/pool.cpp) and the CUDA kernels
// (kernels/nn/pool.cu) so that both pick the same element.
#include <cstdint>

#include "kernels/base/host_device.h"

namespace mq::kernels {

struct PoolGeometry {
  int64_t h, w;            // input plane
  int64_t p, q;            // output plane
  int64_t kernel, stride, padding;
};

// The maximum of output (pi, qi)'s window of one plane and its flat index in the plane, as
// PyTorch's CPU loop chooses it: the first in row-major order among equal maxima, and a NaN
// wins (the window's last NaN). Padding never wins: only elements inside the plane are read.
template <class T>
MQ_HD_INLINE void pool_window_max(const T* plane, const PoolGeometry& g, int64_t pi, int64_t qi,
                                  T* value, int64_t* index) {
  const int64_t h0 = pi * g.stride - g.padding, w0 = qi * g.stride - g.padding;
  const int64_t h1 = h0 + g.kernel < g.h ? h0 + g.kernel : g.h;
  const int64_t w1 = w0 + g.kernel < g.w ? w0 + g.kernel : g.w;
  const int64_t hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;
  T best = plane[hs * g.w + ws];
  int64_t at = hs * g.w + ws;
  for (int64_t ih = hs; ih < h1; ++ih)
    for (int64_t iw = ws; iw < w1; ++iw) {
      // selects, not branches: on random data the comparison is a coin toss
      const T v = plane[ih * g.w + iw];
      const bool take = v > best || v != v;
      best = take ? v : best;
      at = take ? ih * g.w + iw : at;
    }
  *value = best;
  *index = at;
}

// The first and one-past-last output rows (or columns) whose window covers input row (or
// column) i: outputs o with o*stride - padding <= i < o*stride - padding + kernel.
MQ_HD_INLINE void pool_outputs_covering(int64_t i, int64_t kernel, int64_t stride,
                                        int64_t padding, int64_t outputs, int64_t* first,
                                        int64_t* last) {
  const int64_t hi = i + padding;  // o*stride <= hi and o*stride > hi - kernel
  int64_t lo = hi - kernel + 1;
  *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  const int64_t end = hi / stride + 1;
  *last = end < outputs ? end : outputs;
}

}  // namespace mq::kernels
