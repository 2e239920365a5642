#pragma once
// sum(|w|) over [0, n) in T, rounded exactly as PyTorch 1.13's CPU torch.sum of a contiguous
// tensor (ATen SumKernel.cpp, one thread, default AVX2 dispatch: 32-byte Vectorized<T>):
// vectors of kLanes elements are summed by row_sum, i.e. multi_row_sum over rows of 4 vectors
// with a 4-level cascade of chunk 2^max(4, ceil(log2(rows)) / 4), the leftover vectors added to
// row 0, rows 1..3 added to row 0; then a scalar accumulator takes the tail elements in order
// and then the kLanes lanes in order. Inputs shorter than one vector take the same row_sum with
// scalar loads. The reference's BWN alpha is torch.sum(|W|) / numel in f32, and a last-bit
// difference of alpha changes every product W^ * x of the layer: near-tie ReLU masks then flip,
// and Adam, which normalizes tiny gradients, turns that into 2*lr steps and BWN sign flips.
//
// The cascade restarts its level-1 accumulator every chunk^2 rows, so those groups are summed
// in parallel and the upper levels replayed in order on the group sums: the same additions in
// the same order as one thread, at any thread count.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/base/float_math.h"

namespace mq::kernels {

template <class T, int V>
struct SumRow {  // one row of the cascade: 4 vectors of V lanes
  T v[4][V] = {};
  void add(const SumRow& o) {
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < V; ++l) v[k][l] += o.v[k][l];
  }
  void add_abs(const T* x) {  // x: 4 * V consecutive elements
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < V; ++l) v[k][l] += abs_of(x[k * V + l]);
  }
};

template <class T, int V>
SumRow<T, V> cascade_rows_abs(const T* x, int64_t rows) {
  using Row = SumRow<T, V>;
  int64_t log2 = 0;
  while ((int64_t(1) << log2) < rows) ++log2;  // c10 CeilLog2 (0 for rows <= 1)
  const int64_t power = std::max<int64_t>(4, log2 / 4);
  const int64_t step = int64_t(1) << power, mask = step - 1;
  const int64_t chunks = rows / step, groups = chunks / step;
  auto chunk_sum = [&](int64_t c) {  // level 0 from zero over the chunk's rows
    Row a;
    for (int64_t r = c * step; r < (c + 1) * step; ++r) a.add_abs(x + r * 4 * V);
    return a;
  };
  // Level 1 of each full group of `step` chunks: from zero, chunk sums added in order.
  std::vector<Row> group(static_cast<size_t>(groups));
  auto sum_group = [&](int64_t g) {
    for (int64_t c = g * step; c < (g + 1) * step; ++c) group[g].add(chunk_sum(c));
  };
  if (groups > 1 && rows * 4 * V > (1 << 16)) {
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < groups; ++g) sum_group(g);
  } else {  // no parallel region: even an if(false) one costs ~1 us, a small layer's whole sum
    for (int64_t g = 0; g < groups; ++g) sum_group(g);
  }
  Row acc[4];
  for (int64_t g = 0; g < groups; ++g) {  // the cascade's carries at each group's end
    const int64_t i = (g + 1) * step * step;
    acc[2].add(group[g]);
    if ((i & (mask << (2 * power))) != 0) continue;
    acc[3].add(acc[2]);
    acc[2] = Row{};
  }
  for (int64_t c = groups * step; c < chunks; ++c) acc[1].add(chunk_sum(c));
  for (int64_t r = chunks * step; r < rows; ++r) acc[0].add_abs(x + r * 4 * V);
  for (int j = 1; j < 4; ++j) acc[0].add(acc[j]);
  return acc[0];
}

template <class T>
T torch_order_sum_abs(const T* w, int64_t n) {
  constexpr int kLanes = 32 / sizeof(T);
  if (n < kLanes) {  // scalar row_sum: rows of 4 scalars
    SumRow<T, 1> rows = cascade_rows_abs<T, 1>(w, n / 4);
    for (int64_t i = n / 4 * 4; i < n; ++i) rows.v[0][0] += abs_of(w[i]);
    for (int k = 1; k < 4; ++k) rows.v[0][0] += rows.v[k][0];
    return rows.v[0][0];
  }
  const int64_t vecs = n / kLanes;
  SumRow<T, kLanes> rows = cascade_rows_abs<T, kLanes>(w, vecs / 4);
  for (int64_t v = vecs / 4 * 4; v < vecs; ++v)
    for (int l = 0; l < kLanes; ++l) rows.v[0][l] += abs_of(w[v * kLanes + l]);
  for (int k = 1; k < 4; ++k)
    for (int l = 0; l < kLanes; ++l) rows.v[0][l] += rows.v[k][l];
  T total = 0;
  for (int64_t i = vecs * kLanes; i < n; ++i) total += abs_of(w[i]);
  for (int l = 0; l < kLanes; ++l) total += rows.v[0][l];
  return total;
}

}  // namespace mq::kernels
