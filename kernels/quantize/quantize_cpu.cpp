// CPU reference of the weight quantizers: OpenMP over contiguous thread ranges, SIMD loops over
// the per-element math of quantize_math.h. Reductions accumulate in double per SIMD lane (short
// blocks in T first) and are combined in a fixed order, so results are bitwise identical run to
// run (ternary's at any thread count, the others at a fixed one).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/base/error.h"
#include "kernels/cpu_threads.h"
#include "kernels/quantize/quantize.h"
#include "kernels/quantize/quantizer_table.h"
#include "kernels/quantize/torch_order_sum.h"

namespace mq::kernels {
namespace {
// Calls body(begin, end, channel, thread) for the parts of each thread's segment of [0, n) that
// lie inside each channel slice of `per` elements (kernels/cpu_threads.h: no region for one).
template <class Body>
void for_segments(int64_t n, int64_t per, int nthreads, Body&& body) {
  parallel_segments(n, nthreads, [&](int64_t lo, int64_t hi, int thread) {
    for (int64_t i = lo; i < hi;) {
      const int64_t k = i / per;
      const int64_t end = std::min(hi, (k + 1) * per);
      body(i, end, k, thread);
      i = end;
    }
  });
}

// Reductions over [b, e) as plain functions over restrict pointers with independent
// accumulators per SIMD lane (GCC keeps an omp-simd reduction inside a lambda in memory). Each
// lane sums blocks of kSumBlock values in T before adding them into its double: a float sum of
// 8 values errs by at most 7 ulp of the block, far inside the scales' tolerance, and it saves
// the conversion of every element to double, which had bounded these passes.
constexpr int kSumLanes = 16, kSumBlock = 8;
template <class T, class F>
double range_sum(const T* __restrict w, int64_t b, int64_t e, F f) {
  double acc[kSumLanes] = {};
  int64_t i = b;
  for (; i + kSumLanes * kSumBlock <= e; i += kSumLanes * kSumBlock) {
    T block[kSumLanes] = {};
    for (int r = 0; r < kSumBlock; ++r)
#pragma omp simd
      for (int j = 0; j < kSumLanes; ++j) block[j] += f(w[i + r * kSumLanes + j]);
#pragma omp simd
    for (int j = 0; j < kSumLanes; ++j) acc[j] += static_cast<double>(block[j]);
  }
  double s = 0;
  for (; i < e; ++i) s += static_cast<double>(f(w[i]));
  for (int j = 0; j < kSumLanes; ++j) s += acc[j];
  return s;
}

// Sum and count of |w| above delta over [b, e), blocked as range_sum. Branch-free (the kept
// value is |w| times a 0/1 mask): with a conditional the loop stayed scalar, ~12 ns per element.
template <class T>
void range_above(const T* __restrict w, int64_t b, int64_t e, T delta, double& sum,
                 double& count) {
  constexpr int kLanes = kSumLanes;
  double as[kLanes] = {}, ac[kLanes] = {};
  int64_t i = b;
  for (; i + kLanes * kSumBlock <= e; i += kLanes * kSumBlock) {
    T bs[kLanes] = {}, bc[kLanes] = {};
    for (int r = 0; r < kSumBlock; ++r)
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) {
        const T a = abs_of(w[i + r * kLanes + j]);
        const T keep = static_cast<T>(a > delta);
        bs[j] += a * keep;
        bc[j] += keep;
      }
#pragma omp simd
    for (int j = 0; j < kLanes; ++j)
      as[j] += static_cast<double>(bs[j]), ac[j] += static_cast<double>(bc[j]);
  }
  double s = 0, c = 0;
  for (; i < e; ++i) {
    const T a = abs_of(w[i]);
    if (a > delta) s += static_cast<double>(a), c += 1.0;
  }
  for (int j = 0; j < kLanes; ++j) s += as[j], c += ac[j];
  sum = s;
  count = c;
}

// Software prefetch for the backward, which streams two inputs (W, g_W^) into an output. There
// the hardware prefetcher of the 2-core EPYC VM we measure on sustains ~60-70% of copy bandwidth
// at 16M elements; asking for each input kPrefetchAhead elements early brings the loops to copy
// speed (benchmarks/README.md). Loops over one input measured a little slower with it, and so
// did dorefa's compute-heavy backward on data in cache, which prefetches only from
// kPrefetchMinElements on.
constexpr int64_t kPrefetchBlock = 64, kPrefetchAhead = 1024, kPrefetchMinElements = 1 << 22;

// Prefetches [i, i + len) + kPrefetchAhead of each stream.
template <class T, size_t N>
void prefetch_ahead(const std::array<const T*, N>& streams, int64_t i, int64_t len) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (const T* p : streams)
    for (int64_t l = 0; l < len; l += kLine)  // an address, never dereferenced
      __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) +
                                                       (i + kPrefetchAhead + l) * sizeof(T)));
}

// body(b', e') over [b, e) in blocks, each after prefetching the streams ahead of it.
template <class T, size_t N, class Body>
void prefetched_blocks(int64_t b, int64_t e, const std::array<const T*, N>& streams, Body&& body) {
  for (int64_t c = b; c < e; c += kPrefetchBlock) {
    prefetch_ahead(streams, c, kPrefetchBlock);
    body(c, std::min(e, c + kPrefetchBlock));
  }
}

// W^ of the ternary quantizer over [b, e); delta and a by value and restrict pointers, so the
// loop vectorizes (read through captured references it reloaded them per element).
template <class T>
void range_ternary(const T* __restrict w, int64_t b, int64_t e, T delta, T a, T* __restrict w_hat) {
#pragma omp simd
  for (int64_t i = b; i < e; ++i) w_hat[i] = ternary_forward_element(w[i], delta, a);
}

// max|w| over [b, e) (std::abs: dorefa_reduce_value's value, in one instruction): four SIMD
// accumulators, so the max does not wait on its own latency.
template <class T>
T range_max_abs(const T* __restrict w, int64_t b, int64_t e) {
  constexpr int kLanes = 64;
  T acc[kLanes] = {};
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const T v = std::abs(w[i + j]);
      acc[j] = acc[j] > v ? acc[j] : v;
    }
  T m = 0;
  for (; i < e; ++i) m = std::max(m, std::abs(w[i]));
  for (int j = 0; j < kLanes; ++j) m = std::max(m, acc[j]);
  return m;
}

// Whether every |w| in [b, e) lies below bound (false where one is NaN).
template <class T>
bool all_abs_below(const T* __restrict w, int64_t b, int64_t e, T bound) {
  int outside = 0;
#pragma omp simd reduction(| : outside)
  for (int64_t i = b; i < e; ++i) outside |= !(std::abs(w[i]) < bound);
  return outside == 0;
}

// Calls body.template operator()<small>(b, e) over chunks of [b, e), small = every |w| of the
// chunk lies below kTanhSmallBound: there the f32 tanh is its polynomial branch alone, the same
// bits for a third of the work. Trained weights seldom reach 0.5, so nearly every chunk takes
// it; one that holds a large weight (or a NaN) takes the full tanh. A caller that has max|W|
// passes it as max_abs, which settles the whole range at once when it is below the bound.
template <class T, class Body>
void by_tanh_range(const T* w, int64_t b, int64_t e, Body&& body, T max_abs = T(-1),
                   const T* also_prefetch = nullptr) {
  if constexpr (!std::is_same_v<T, float>) {
    body.template operator()<false>(b, e);
  } else {
    if (max_abs >= 0 && max_abs < kTanhSmallBound) return body.template operator()<true>(b, e);
    constexpr int64_t kChunk = 512;
    for (int64_t c = b; c < e; c += kChunk) {
      const int64_t ce = std::min(e, c + kChunk);
      if (also_prefetch) prefetch_ahead(std::array{w, also_prefetch}, c, ce - c);
      if (all_abs_below(w, c, ce, kTanhSmallBound)) body.template operator()<true>(c, ce);
      else body.template operator()<false>(c, ce);
    }
  }
}

// Per-channel sums of f(w) over all slices, in double; deterministic for a fixed thread count.
template <class T, class F>
std::vector<double> channel_sums(const T* w, int64_t n, int64_t channels, F&& f) {
  const int nt = cpu_threads_for(n);
  std::vector<double> partial(static_cast<size_t>(nt * channels), 0.0);
  for_segments(n, n / channels, nt, [&](int64_t b, int64_t e, int64_t k, int t) {
    partial[static_cast<size_t>(t * channels + k)] += range_sum(w, b, e, f);
  });
  std::vector<double> sums(static_cast<size_t>(channels), 0.0);
  for (int t = 0; t < nt; ++t)
    for (int64_t k = 0; k < channels; ++k) sums[k] += partial[static_cast<size_t>(t * channels + k)];
  return sums;
}

// dorefa's two passes in one parallel region (a fork and join cost about a tenth of a 1M pass):
// each thread's max|w| over its segment; after a barrier every thread takes the max of all of
// them (exact in any order) and runs body(max_abs, m, b, e) over blocks of its segment. Returns
// max_abs.
template <class T, class Body>
T dorefa_passes(const T* w, int64_t n, Body&& body) {
  const int nt = cpu_threads_for(n);
  if (nt <= 1) {  // no parallel region for one thread (kernels/cpu_threads.h)
    const T max_abs = range_max_abs(w, int64_t(0), n);
    body(max_abs, dorefa_scale_from_max(max_abs), int64_t(0), n);
    return max_abs;
  }
  std::vector<T> part(static_cast<size_t>(nt), T(0));
  auto max_of_parts = [&](int count) { return *std::max_element(part.begin(), part.begin() + count); };
#pragma omp parallel num_threads(nt)
  {
    const auto [lo, hi] = thread_segment(n);
    part[omp_get_thread_num()] = range_max_abs(w, lo, hi);
#pragma omp barrier
    const T max_abs = max_of_parts(omp_get_num_threads());
    const T m = dorefa_scale_from_max(max_abs);
    // Back to front in blocks, so the pass starts on the part of the segment the max pass left
    // in this core's L2.
    constexpr int64_t kBlock = 1 << 16;
    for (int64_t e = hi; e > lo; e -= kBlock) body(max_abs, m, std::max(lo, e - kBlock), e);
  }
  return *std::max_element(part.begin(), part.end());
}

template <class T, int Bits>
void dorefa_forward(const T* w, int64_t n, T* w_tilde, T* w_hat, T* scale) {
  const T max_abs = dorefa_passes(w, n, [&](T max_abs, T m, int64_t b, int64_t e) {
    // m by value and the outputs as restrict locals: through the outer lambda's captures GCC
    // left this loop scalar
    by_tanh_range(w, b, e, [m, w, w_tilde, w_hat]<bool Small>(int64_t cb, int64_t ce) {
      T* __restrict wt = w_tilde;
      T* __restrict wh = w_hat;
#pragma omp simd
      for (int64_t i = cb; i < ce; ++i) dorefa_forward_element<T, Bits, Small>(w[i], m, wt[i], wh[i]);
    }, max_abs);
  });
  scale[0] = dorefa_scale_from_max(max_abs);
}

template <class T>
void dorefa_forward_bits(int bits, const T* w, int64_t n, T* w_tilde, T* w_hat, T* scale) {
  for_each_dorefa_bits([&](auto b) {
    if (bits == b.value) dorefa_forward<T, decltype(b)::value>(w, n, w_tilde, w_hat, scale);
  });
}

template <class T>
void copy_if_wanted(const T* w, int64_t b, int64_t e, T* w_tilde) {
  if (w_tilde) std::copy(w + b, w + e, w_tilde + b);
}

template <class T>
void bwn_forward(const T* w, int64_t n, int64_t channels, T* w_tilde, T* w_hat, T* scale) {
  const int64_t per = n / channels;
  if (channels == 1) {
    // BWN: alpha = torch.sum(|W|) / numel in T, as the reference computes it.
    scale[0] = torch_order_sum_abs(w, n) / static_cast<T>(n);
  } else {
    auto sums = channel_sums(w, n, channels, [](T x) { return abs_of(x); });
    for (int64_t k = 0; k < channels; ++k) scale[k] = static_cast<T>(sums[k] / static_cast<double>(per));
  }
  for_segments(n, per, cpu_threads_for(n), [&](int64_t b, int64_t e, int64_t k, int) {
    const T alpha = scale[k];
#pragma omp simd
    for (int64_t i = b; i < e; ++i) w_hat[i] = bwn_forward_element(w[i], alpha);
    copy_if_wanted(w, b, e, w_tilde);
  });
}

// Three passes in one parallel region (a fork and join cost as much as a pass at 1M): sum |w|
// -> delta, sum and count of |w| above delta -> a, then W^. Each pass splits W into fixed
// chunks, the same contiguous run of them per thread in every pass (a dynamic schedule, which
// moves chunks between cores from pass to pass, measured 20% slower), and keeps one partial sum
// per chunk, combined in chunk order: the same bits at any thread count.
template <class T>
void ternary_forward(const T* w, int64_t n, T* w_tilde, T* w_hat, T* scale) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto abs_sum = [&](int64_t b, int64_t e) { return range_sum(w, b, e, [](T x) { return abs_of(x); }); };
  auto delta_of = [&](double sum_abs) { return ternary_threshold(static_cast<T>(sum_abs / static_cast<double>(n))); };
  auto scale_of = [](double sum, double count) { return count > 0 ? static_cast<T>(sum / count) : T(0); };
  auto write = [&](int64_t b, int64_t e, T delta, T a) {
    range_ternary(w, b, e, delta, a, w_hat);
    copy_if_wanted(w, b, e, w_tilde);
  };
  if (chunks == 1) {  // a layer-sized W: no parallel region (kernels/cpu_threads.h)
    const T delta = delta_of(abs_sum(0, n));
    double sum = 0, count = 0;
    range_above(w, 0, n, delta, sum, count);
    scale[0] = scale_of(sum, count);
    write(0, n, delta, scale[0]);
    return;
  }
  std::vector<double> part_abs(static_cast<size_t>(chunks)), part_sum(part_abs), part_count(part_abs);
  auto in_order = [](const std::vector<double>& parts) {
    double s = 0;
    for (double p : parts) s += p;
    return s;
  };
  T delta = 0, a = 0;
  auto end_of = [&](int64_t k) { return std::min(n, (k + 1) * kChunk); };
#pragma omp parallel num_threads(cpu_threads_for(n))
  {
    // This thread's chunks [k0, k1), the same in every pass. The middle pass runs them back to
    // front, so it starts on the chunks the first pass left in this core's L2, and the last
    // pass, front to back again, on those the middle one left.
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t k0 = chunks * t / nt, k1 = chunks * (t + 1) / nt;
    for (int64_t k = k0; k < k1; ++k) part_abs[k] = abs_sum(k * kChunk, end_of(k));
#pragma omp barrier
#pragma omp single
    delta = delta_of(in_order(part_abs));
    for (int64_t k = k1 - 1; k >= k0; --k)
      range_above(w, k * kChunk, end_of(k), delta, part_sum[k], part_count[k]);
#pragma omp barrier
#pragma omp single
    a = scale_of(in_order(part_sum), in_order(part_count));
    for (int64_t k = k0; k < k1; ++k) write(k * kChunk, end_of(k), delta, a);
  }
  scale[0] = a;
}
}  // namespace

void check_quantize_args(Quantizer q, int bits, int64_t n, int64_t channels) {
  MQ_CHECK(static_cast<size_t>(q) < kQuantizerTable.size(), "quantize: unknown quantizer {}",
           static_cast<int>(q));
  const QuantizerInfo& info = quantizer_info(q);
  MQ_CHECK(n >= 1, "quantize ({}): the weight is empty", info.name);
  MQ_CHECK(channels >= 1 && n % channels == 0,
           "quantize ({}): {} elements do not split into {} output channels", info.name, n,
           channels);
  MQ_CHECK(channels == 1 || info.per_channel,
           "quantize ({}): a per-tensor quantizer got {} channels", info.name, channels);
  if (info.kernel_bits == kBitsAsGiven) {
    MQ_CHECK(bits >= info.min_bits && bits <= info.max_bits,
             "quantize ({}): {} bits is not supported; use {}..{}", info.name, bits,
             info.min_bits, info.max_bits);
  } else {
    MQ_CHECK(bits == info.kernel_bits, "quantize ({}): its kernels run with {} bit(s), got {}",
             info.name, info.kernel_bits, bits);
  }
}

template <class T>
void quantize_forward_cpu(Quantizer q, int bits, const T* w, int64_t n, int64_t channels,
                          T* w_tilde, T* w_hat, T* scale) {
  check_quantize_args(q, bits, n, channels);
  switch (q) {
    case Quantizer::dorefa: return dorefa_forward_bits(bits, w, n, w_tilde, w_hat, scale);
    case Quantizer::bwn:
    case Quantizer::bwn_f: return bwn_forward(w, n, channels, w_tilde, w_hat, scale);
    case Quantizer::ternary: return ternary_forward(w, n, w_tilde, w_hat, scale);
  }
}

template <class T>
void quantize_backward_cpu(Quantizer q, const T* w, const T* g_hat, const T* scale, int64_t n,
                           int64_t channels, T* g_w) {
  const int64_t per = n / channels;
  for_segments(n, per, cpu_threads_for(n), [&](int64_t b, int64_t e, int64_t k, int) {
    const T s = scale[k];
    if (q == Quantizer::dorefa) {
      by_tanh_range(w, b, e, [&]<bool Small>(int64_t cb, int64_t ce) {
#pragma omp simd
        for (int64_t i = cb; i < ce; ++i) g_w[i] = dorefa_backward_element<Small>(w[i], g_hat[i], s);
      }, T(-1), n >= kPrefetchMinElements ? g_hat : nullptr);
    } else {
      prefetched_blocks(b, e, std::array{w, g_hat}, [&](int64_t pb, int64_t pe) {
#pragma omp simd
        for (int64_t i = pb; i < pe; ++i) g_w[i] = scaled_ste_backward_element(w[i], g_hat[i], s);
      });
    }
  });
}

template <class T>
void quantize_calibration_cpu(Quantizer q, const T* w, int64_t n, int64_t channels, T* c) {
  if (q != Quantizer::dorefa) {  // the STE's calibration is 1; filled by all threads
    for_segments(n, n, cpu_threads_for(n), [&](int64_t b, int64_t e, int64_t, int) {
      std::fill(c + b, c + e, T(1));
    });
    return;
  }
  (void)channels;
  dorefa_passes(w, n, [&](T max_abs, T m, int64_t b, int64_t e) {
    by_tanh_range(w, b, e, [&]<bool Small>(int64_t cb, int64_t ce) {
#pragma omp simd
      for (int64_t i = cb; i < ce; ++i) c[i] = dorefa_calibration_element<Small>(w[i], m);
    }, max_abs);
  });
}

#define MQ_INSTANTIATE(T)                                                                     \
  template void quantize_forward_cpu<T>(Quantizer, int, const T*, int64_t, int64_t, T*, T*, T*); \
  template void quantize_backward_cpu<T>(Quantizer, const T*, const T*, const T*, int64_t,      \
                                         int64_t, T*);                                          \
  template void quantize_calibration_cpu<T>(Quantizer, const T*, int64_t, int64_t, T*);
MQ_INSTANTIATE(float)
MQ_INSTANTIATE(double)
#undef MQ_INSTANTIATE

}  // namespace mq::kernels
