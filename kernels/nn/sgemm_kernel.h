#pragma once
// A small single-threaded f32 GEMM for the conv hot path:
//   C[M, N] (+)= A[M, Kd] * B[Kd, N],  B and C row-major (row strides ldb, ldc),
//   A read through arbitrary strides (A(i, l) = a[i * ars + l * acs]) so W and W^T need no copy.
//   B's rows may instead come from a table of offsets (B(l, j) = b[b_rows[l] + j]): the conv
//   forward reads its columns as shifted views of the padded input that way, without im2col.
// Why not Eigen: conv GEMMs are skinny (M = 16..64 output channels) and Eigen packs both
// operands on every call; here B is streamed in place (one 64-column panel stays in L1 while
// every row block of A sweeps it) and A is broadcast element by element, 6 rows x 64 columns
// of C held in 24 AVX-512 registers (6 x 16 in 12 AVX2 registers).
#include <algorithm>
#include <cstdint>
#include <cstdlib>

// On AVX-512, B's rows may also be masked (b_masks): lane j of row l is read only where bit
// j % 16 of b_masks[l][j / 16] is set and is +0 elsewhere, so a "same" stride-1 conv reads its
// taps straight from the unpadded plane (a shifted row offset, the lanes that fall outside the
// plane masked off: AVX-512 masked loads do not touch masked-off memory).
// Every output sums its depth block as one FMA chain from zero, so the bits depend on the
// blocking only, never on the vector width: AVX-512 and AVX2 machines give identical results
// (the golden traces need PyTorch's oneDNN summation order on both).
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define MQ_HAVE_SGEMM_KERNEL 1
#else
#define MQ_HAVE_SGEMM_KERNEL 0
#endif
#if defined(__AVX512F__)
#define MQ_SGEMM_MASKED_ROWS 1
#else
#define MQ_SGEMM_MASKED_ROWS 0
#endif

namespace mq::cpu {

#if MQ_HAVE_SGEMM_KERNEL
namespace sgemm_detail {

// One SIMD register of floats and the few operations the kernel needs; `Mask` selects the
// first lanes of a partial vector.
#if defined(__AVX512F__)
struct Simd {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  static constexpr int kMr = 6;  // rows of C per micro tile: 6 x 4 accumulators of 32 registers
  static constexpr int kNv = 4;  // vectors of C per micro tile row
  static Mask mask(int n) { return n >= kLanes ? Mask(0xFFFF) : Mask((1u << n) - 1u); }
  static V zero() { return _mm512_setzero_ps(); }
  static V broadcast(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
#else
struct Simd {
  using V = __m256;
  using Mask = __m256i;
  static constexpr int kLanes = 8;
  static constexpr int kMr = 6;  // 6 x 2 accumulators + 2 of B + 1 of A in 16 registers
  static constexpr int kNv = 2;
  static Mask mask(int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V broadcast(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
#endif

constexpr int kLanes = Simd::kLanes;
constexpr int kMr = Simd::kMr;
constexpr int kNv = Simd::kNv;
constexpr int64_t kKc = 192;  // depth block: keeps a B panel (kKc x kNv vectors) in L1

// How B's rows are found: b + l * ldb, b + b_rows[l], or b + b_rows[l] with lane masks.
enum class BRows { strided, table, masked };
using MaskRows = const uint16_t* const*;

// acc[r][v] += A(r, l) B(l, v) for the depth rows [l0, l1): the FMA chain every output sums.
template <int R, int V, BRows Mode>
[[gnu::always_inline]] inline void fma_rows(Simd::V (&acc)[R][V], int64_t l0, int64_t l1,
                                            const float* a, int64_t ars, int64_t acs,
                                            const float* b, int64_t ldb, const int64_t* b_rows,
                                            [[maybe_unused]] MaskRows b_masks,
                                            [[maybe_unused]] int64_t vec0, Simd::Mask tail) {
  [[maybe_unused]] Simd::Mask mk[V] = {};  // the lane masks of the current run of rows
  [[maybe_unused]] const uint16_t* mask_row = nullptr;
  for (int64_t l = l0; l < l1; ++l) {
    const float* bl = Mode == BRows::strided ? b + l * ldb : b + b_rows[l];
    Simd::V bv[V];
#if defined(__AVX512F__)
    if constexpr (Mode == BRows::masked) {
      if (b_masks[l] != mask_row) {  // rows come in runs of one tap: reload at a new run only
        mask_row = b_masks[l];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v)
          mk[v] = Simd::Mask(mask_row[vec0 + v] & (v == V - 1 ? tail : Simd::mask(kLanes)));
      }
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) bv[v] = Simd::load(bl + kLanes * v, mk[v]);
    } else
#endif
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        bv[v] = v == V - 1 ? Simd::load(bl + kLanes * v, tail) : Simd::load(bl + kLanes * v);
    const float* al = a + l * acs;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Simd::V ar = Simd::broadcast(al[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = Simd::fmadd(ar, bv[v], acc[r][v]);
    }
  }
}

template <int R, int V, BRows Mode>
inline void micro(int64_t kd, const float* a, int64_t ars, int64_t acs, const float* b,
                  int64_t ldb, const int64_t* b_rows, MaskRows b_masks, int64_t vec0, float* c,
                  int64_t ldc, Simd::Mask tail, bool accumulate) {
  const Simd::Mask full = Simd::mask(kLanes);
  Simd::V acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = Simd::zero();
  fma_rows<R, V, Mode>(acc, 0, kd, a, ars, acs, b, ldb, b_rows, b_masks, vec0, tail);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const Simd::Mask m = v == V - 1 ? tail : full;
      Simd::V out = acc[r][v];
      if (accumulate) out = Simd::add(out, Simd::load(cr + kLanes * v, m));
      Simd::store(cr + kLanes * v, out, m);
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                         const int64_t*, MaskRows, int64_t, float*, int64_t, Simd::Mask, bool);

template <int R, BRows Mode>
constexpr MicroFn pick_v(int v) {
  if constexpr (kNv == 2) {
    return v == 1 ? micro<R, 1, Mode> : micro<R, 2, Mode>;
  } else {
    return v == 1   ? micro<R, 1, Mode>
           : v == 2 ? micro<R, 2, Mode>
           : v == 3 ? micro<R, 3, Mode>
                    : micro<R, 4, Mode>;
  }
}
template <BRows Mode>
MicroFn pick_r(int r, int v) {
  switch (r) {
    case 1: return pick_v<1, Mode>(v);
    case 2: return pick_v<2, Mode>(v);
    case 3: return pick_v<3, Mode>(v);
    case 4: return pick_v<4, Mode>(v);
    case 5: return pick_v<5, Mode>(v);
    default: return pick_v<6, Mode>(v);
  }
}
inline MicroFn pick(BRows mode, int r, int v) {
  switch (mode) {
    case BRows::strided: return pick_r<BRows::strided>(r, v);
    case BRows::table: return pick_r<BRows::table>(r, v);
#if MQ_SGEMM_MASKED_ROWS
    case BRows::masked: return pick_r<BRows::masked>(r, v);
#endif
    default: std::abort();  // masked rows exist on AVX-512 builds only (MQ_SGEMM_MASKED_ROWS)
  }
}

#if MQ_SGEMM_MASKED_ROWS
// Short depth blocks (a conv input gradient's taps over 16 channels: 16 FMA steps each) spend
// as much on adding each block's sums into C in memory as on the steps themselves. This tile
// (4 rows x 3 vectors, its running sums and block sums in 24 registers) keeps C in registers
// across all blocks: run = run + block in block order, the same additions as C = C + block.
// Masked rows only (the input gradients that have such short blocks).
template <int R, int V>
void micro_chain(int64_t kd, int64_t kc, const float* a, int64_t ars, int64_t acs,
                 const float* b, const int64_t* b_rows, MaskRows b_masks, int64_t vec0,
                 float* c, int64_t ldc, Simd::Mask tail, bool accumulate) {
  Simd::V run[R][V];
  for (int64_t k0 = 0; k0 < kd; k0 += kc) {
    Simd::V acc[R][V];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = Simd::zero();
    fma_rows<R, V, BRows::masked>(acc, k0, std::min(kd, k0 + kc), a, ars, acs, b, 0, b_rows,
                                  b_masks, vec0, tail);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) {
        if (k0 > 0) run[r][v] = Simd::add(run[r][v], acc[r][v]);
        else if (accumulate)
          run[r][v] = Simd::add(acc[r][v], Simd::load(c + r * ldc + kLanes * v,
                                                      v == V - 1 ? tail : Simd::mask(kLanes)));
        else run[r][v] = acc[r][v];
      }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v)
      Simd::store(c + r * ldc + kLanes * v, run[r][v], v == V - 1 ? tail : Simd::mask(kLanes));
}

using ChainFn = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*,
                         const int64_t*, MaskRows, int64_t, float*, int64_t, Simd::Mask, bool);
template <int R>
ChainFn pick_chain_v(int v) {
  return v == 1 ? micro_chain<R, 1> : v == 2 ? micro_chain<R, 2> : micro_chain<R, 3>;
}
inline ChainFn pick_chain(int r, int v) {
  switch (r) {
    case 1: return pick_chain_v<1>(v);
    case 2: return pick_chain_v<2>(v);
    case 3: return pick_chain_v<3>(v);
    default: return pick_chain_v<4>(v);
  }
}

// The whole product on micro_chain tiles where it applies (more than one depth block, of at
// most 16 rows); false, doing nothing, elsewhere. Out of line so that sgemm itself stays small enough
// for the compiler to inline at its many small call sites.
[[gnu::noinline]] inline bool chained(int64_t m, int64_t n, int64_t kd, const float* a,
                                      int64_t ars, int64_t acs, const float* b,
                                      const int64_t* b_rows, MaskRows b_masks, float* c,
                                      int64_t ldc, int64_t kc, bool accumulate) {
  if (kc >= kd || kc > 16) return false;
  constexpr int kRows = 4, kVecs = 3;
  for (int64_t j0 = 0; j0 < n; j0 += kLanes * kVecs) {
    const int64_t nj = std::min<int64_t>(kLanes * kVecs, n - j0);
    const int nv = int((nj + kLanes - 1) / kLanes);
    const Simd::Mask tail = Simd::mask(int(nj - kLanes * (nv - 1)));
    for (int64_t i0 = 0; i0 < m; i0 += kRows)
      pick_chain(int(std::min<int64_t>(kRows, m - i0)), nv)(
          kd, kc, a + i0 * ars, ars, acs, b + j0, b_rows, b_masks, j0 / kLanes,
          c + i0 * ldc + j0, ldc, tail, accumulate);
  }
  return true;
}
#endif

}  // namespace sgemm_detail

// C = A * B (accumulate = false) or C += A * B. The depth is summed in blocks of `kc`: each
// block is one FMA chain from zero, added to C in block order (C = C + block). With `b_rows`,
// B's row l starts at b + b_rows[l] (ldb unused); with `b_masks` too (AVX-512 builds only), its
// lanes are masked as described at the top.
inline void sgemm(int64_t m, int64_t n, int64_t kd, const float* a, int64_t ars, int64_t acs,
                  const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                  int64_t kc_max = sgemm_detail::kKc, const int64_t* b_rows = nullptr,
                  sgemm_detail::MaskRows b_masks = nullptr) {
  using namespace sgemm_detail;
  if (kd == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    return;
  }
#if MQ_SGEMM_MASKED_ROWS
  if (b_masks && chained(m, n, kd, a, ars, acs, b, b_rows, b_masks, c, ldc, kc_max, accumulate))
    return;
#endif
  for (int64_t k0 = 0; k0 < kd; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, kd - k0);
    const bool acc = accumulate || k0 > 0;
    const float* bk = b_rows ? b : b + k0 * ldb;
    const int64_t* rows = b_rows ? b_rows + k0 : nullptr;
    const MaskRows masks = b_masks ? b_masks + k0 : nullptr;
    const BRows mode = masks ? BRows::masked : rows ? BRows::table : BRows::strided;
    for (int64_t j0 = 0; j0 < n; j0 += kLanes * kNv) {
      const int64_t nj = std::min<int64_t>(kLanes * kNv, n - j0);
      const int nv = int((nj + kLanes - 1) / kLanes);
      const Simd::Mask tail = Simd::mask(int(nj - kLanes * (nv - 1)));
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const int r = int(std::min<int64_t>(kMr, m - i0));
        pick(mode, r, nv)(kc, a + i0 * ars + k0 * acs, ars, acs, bk + j0, ldb, rows, masks,
                          j0 / kLanes, c + i0 * ldc + j0, ldc, tail, acc);
      }
    }
  }
}
#endif

}  // namespace mq::cpu
