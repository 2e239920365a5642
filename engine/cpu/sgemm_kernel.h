#pragma once
// A small single-threaded f32 GEMM for the conv hot path:
//   C[M, N] (+)= A[M, Kd] * B[Kd, N],  B and C row-major (row strides ldb, ldc),
//   A read through arbitrary strides (A(i, l) = a[i * ars + l * acs]) so W and W^T need no copy.
//   B's rows may instead come from a table of offsets (B(l, j) = b[b_rows[l] + j]): the conv
//   forward reads its columns as shifted views of the padded input that way, without im2col.
// Why not Eigen: conv GEMMs are skinny (M = 16..64 output channels) and Eigen packs both
// operands on every call; here B is streamed in place (one 64-column panel stays in L1 while
// every row block of A sweeps it) and A is broadcast element by element, 6 rows x 64 columns
// of C held in 24 AVX-512 registers.
#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#define MQ_HAVE_SGEMM_KERNEL 1
#else
#define MQ_HAVE_SGEMM_KERNEL 0
#endif

namespace mq::cpu {

#if MQ_HAVE_SGEMM_KERNEL
namespace sgemm_detail {

constexpr int kMr = 6;           // rows of C per micro tile
constexpr int kNv = 4;           // 16-float vectors of C per micro tile row
constexpr int64_t kKc = 192;     // depth block: keeps a B panel (kKc x 64 floats) in L1

template <int R, int V, bool RowTable>
inline void micro(int64_t kd, const float* a, int64_t ars, int64_t acs, const float* b,
                  int64_t ldb, const int64_t* b_rows, float* c, int64_t ldc, __mmask16 tail,
                  bool accumulate) {
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t l = 0; l < kd; ++l) {
    const float* bl = RowTable ? b + b_rows[l] : b + l * ldb;
    __m512 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      bv[v] = v == V - 1 ? _mm512_maskz_loadu_ps(tail, bl + 16 * v) : _mm512_loadu_ps(bl + 16 * v);
    const float* al = a + l * acs;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 ar = _mm512_set1_ps(al[r * ars]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __mmask16 m = v == V - 1 ? tail : __mmask16(0xFFFF);
      __m512 out = acc[r][v];
      if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(m, cr + 16 * v));
      _mm512_mask_storeu_ps(cr + 16 * v, m, out);
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                         const int64_t*, float*, int64_t, __mmask16, bool);

template <int R, bool RowTable>
constexpr MicroFn pick_v(int v) {
  return v == 1   ? micro<R, 1, RowTable>
         : v == 2 ? micro<R, 2, RowTable>
         : v == 3 ? micro<R, 3, RowTable>
                  : micro<R, 4, RowTable>;
}
template <bool RowTable>
MicroFn pick(int r, int v) {
  switch (r) {
    case 1: return pick_v<1, RowTable>(v);
    case 2: return pick_v<2, RowTable>(v);
    case 3: return pick_v<3, RowTable>(v);
    case 4: return pick_v<4, RowTable>(v);
    case 5: return pick_v<5, RowTable>(v);
    default: return pick_v<6, RowTable>(v);
  }
}

}  // namespace sgemm_detail

// C = A * B (accumulate = false) or C += A * B. The depth is summed in blocks of `kc`: each
// block is one FMA chain from zero, added to C in block order (C = C + block). With `b_rows`,
// B's row l starts at b + b_rows[l] (ldb unused).
inline void sgemm(int64_t m, int64_t n, int64_t kd, const float* a, int64_t ars, int64_t acs,
                  const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                  int64_t kc_max = sgemm_detail::kKc, const int64_t* b_rows = nullptr) {
  using namespace sgemm_detail;
  if (kd == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    return;
  }
  for (int64_t k0 = 0; k0 < kd; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, kd - k0);
    const bool acc = accumulate || k0 > 0;
    const float* bk = b_rows ? b : b + k0 * ldb;
    const int64_t* rows = b_rows ? b_rows + k0 : nullptr;
    for (int64_t j0 = 0; j0 < n; j0 += 16 * kNv) {
      const int64_t nj = std::min<int64_t>(16 * kNv, n - j0);
      const int nv = int((nj + 15) / 16);
      const int rem = int(nj - 16 * (nv - 1));
      const __mmask16 tail = __mmask16((1u << rem) - 1u);
      for (int64_t i0 = 0; i0 < m; i0 += kMr) {
        const int r = int(std::min<int64_t>(kMr, m - i0));
        (rows ? pick<true>(r, nv) : pick<false>(r, nv))(kc, a + i0 * ars + k0 * acs, ars, acs,
                                                         bk + j0, ldb, rows, c + i0 * ldc + j0,
                                                         ldc, tail, acc);
      }
    }
  }
}
#endif

}  // namespace mq::cpu
