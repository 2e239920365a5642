// CPU convolution as GEMMs over columns on NCHW tensors, OpenMP over images, each GEMM
// single-threaded inside its thread (the sgemm kernel for f32 on AVX-512 or AVX2 machines,
// Eigen otherwise).
//
// Per image n, with the columns col [C*R*S, P*Q] of x_n:
//   forward          y_n [K, PQ]   = W [K, CRS] * col
//   backward input   gcol [CRS,PQ] = W^T * gy_n, then gx_n = col2im(gcol)
//   backward weight  gW^T [CRS,K] += col * gy_n^T (one accumulator per thread, summed at the end)
// A 1x1 stride-1 unpadded conv uses x_n itself as its columns (no copy). The f32 forward reads
// the columns as shifted views: of the unpadded input through masked rows for "same" stride-1
// convs on AVX-512 (forward_masked), else of the padded input (forward_shifted); so does the
// f32 input gradient of square-kernel convs (backward_input_masked, backward_input_phases, per
// output phase of gx, in the same summation order as the im2col path); the rest builds them
// with im2col. Where oneDNN is built in it takes the passes conv_library.h names.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/conv_epilogue.h"
#include "engine/cpu/conv_groups.h"
#include "engine/cpu/conv_library.h"
#include "kernels/eigen_util.h"
#include "kernels/nn/sgemm_kernel.h"
#include "engine/dispatch.h"
#include "kernels/elementwise/elementwise_math.h"
#include "kernels/base/float_math.h"

namespace mq::cpu {
namespace {

struct ConvGeom {
  int64_t n, c, h, w, k, r, s, p, q, stride, pad;
  int64_t crs() const { return c * r * s; }
  int64_t pq() const { return p * q; }
  bool pointwise() const { return r == 1 && s == 1 && stride == 1 && pad == 0; }
};

ConvGeom geom_of(const Tensor& x, const Tensor& w, const Tensor& y, Conv2dParams prm) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3),
          y.size(2), y.size(3), prm.stride, prm.padding};
}

// Per-thread scratch that persists across calls (OpenMP keeps its worker threads), so the hot
// loop does no allocation or page faulting after the first step.
template <class T>
T* scratch(size_t count, int slot) {
  thread_local std::vector<T> buf[2];
  auto& b = buf[slot];
  if (b.size() < count) b.resize(count);
  return b.data();
}

// Valid output range [lo, hi) along one axis: input index o*stride - pad + off in [0, len).
inline void valid_range(int64_t out, int64_t len, int64_t stride, int64_t pad, int64_t off,
                        int64_t& lo, int64_t& hi) {
  lo = 0;
  while (lo < out && lo * stride - pad + off < 0) ++lo;
  hi = out;
  while (hi > lo && (hi - 1) * stride - pad + off >= len) --hi;
}

// Row of (ci, ri, si) in the columns: (ci, ri, si) order by default; with channel blocks of
// `cb` > 0: (ci / cb, ri, si, ci % cb), the order in which PyTorch's (oneDNN) f32 conv forward
// sums (see forward_impl).
inline int64_t col_row(const ConvGeom& g, int64_t ci, int64_t ri, int64_t si, int64_t cb) {
  if (cb <= 0) return (ci * g.r + ri) * g.s + si;
  const int64_t blk = ci / cb, width = std::min(cb, g.c - blk * cb);
  return blk * cb * g.r * g.s + (ri * g.s + si) * width + ci % cb;
}

template <class T>
void im2col(const T* x, const ConvGeom& g, T* col) {
  const int64_t pq = g.pq();
  for (int64_t ci = 0; ci < g.c; ++ci) {
    const T* xc = x + ci * g.h * g.w;
    for (int64_t ri = 0; ri < g.r; ++ri) {
      int64_t p0, p1;
      valid_range(g.p, g.h, g.stride, g.pad, ri, p0, p1);
      for (int64_t si = 0; si < g.s; ++si) {
        T* row = col + ((ci * g.r + ri) * g.s + si) * pq;
        int64_t q0, q1;
        valid_range(g.q, g.w, g.stride, g.pad, si, q0, q1);
        std::fill(row, row + p0 * g.q, T(0));
        for (int64_t pi = p0; pi < p1; ++pi) {
          T* out = row + pi * g.q;
          const T* in = xc + (pi * g.stride - g.pad + ri) * g.w - g.pad + si;
          std::fill(out, out + q0, T(0));
          if (g.stride == 1) {
            std::memcpy(out + q0, in + q0, sizeof(T) * (q1 - q0));
          } else {
            for (int64_t qi = q0; qi < q1; ++qi) out[qi] = in[qi * g.stride];
          }
          std::fill(out + q1, out + g.q, T(0));
        }
        std::fill(row + p1 * g.q, row + pq, T(0));
      }
    }
  }
}

// gx (already zeroed) += scatter of gcol; the adjoint of im2col.
template <class T>
void col2im(const T* col, const ConvGeom& g, T* gx) {
  const int64_t pq = g.pq();
  for (int64_t ci = 0; ci < g.c; ++ci) {
    T* xc = gx + ci * g.h * g.w;
    for (int64_t ri = 0; ri < g.r; ++ri) {
      int64_t p0, p1;
      valid_range(g.p, g.h, g.stride, g.pad, ri, p0, p1);
      for (int64_t si = 0; si < g.s; ++si) {
        const T* row = col + ((ci * g.r + ri) * g.s + si) * pq;
        int64_t q0, q1;
        valid_range(g.q, g.w, g.stride, g.pad, si, q0, q1);
        for (int64_t pi = p0; pi < p1; ++pi) {
          const T* in = row + pi * g.q;
          T* out = xc + (pi * g.stride - g.pad + ri) * g.w - g.pad + si;
          if (g.stride == 1) {
            for (int64_t qi = q0; qi < q1; ++qi) out[qi] += in[qi];
          } else {
            for (int64_t qi = q0; qi < q1; ++qi) out[qi * g.stride] += in[qi];
          }
        }
      }
    }
  }
}

// C[M, N] = A[M, Kd] * B[Kd, N] with A(i, l) = a[i * ars + l * acs], B and C row-major.
// f32 with AVX-512 or AVX2 runs the dedicated kernel; otherwise (f64, other CPUs) Eigen.
template <class T>
void conv_gemm(int64_t m, int64_t n, int64_t kd, const T* a, int64_t ars, int64_t acs, const T* b,
               T* c) {
#if MQ_HAVE_SGEMM_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    sgemm(m, n, kd, a, ars, acs, b, n, c, n, false);
    return;
  }
#endif
  MapMat<T> C(c, m, n);
  CMapMat<T> B(b, kd, n);
  if (acs == 1) C.noalias() = CMapMat<T>(a, m, kd) * B;
  else C.noalias() = CMapMat<T>(a, kd, m).transpose() * B;
}

// One output row through the inference epilogue (conv_epilogue.h): the batch norm's affine as
// its op computes it (apply_affine in batch_norm.cpp), then the add and the ReLU of the
// elementwise ops' own per-element math, so the bits are theirs.
template <bool Residual, bool Relu>
void epilogue_row_impl(float* dst, const float* src, int64_t n, float a, float b,
                       const float* res) {  // dst may be src
  using kernels::apply_binary, kernels::apply_unary, kernels::BinaryOp, kernels::UnaryOp;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float v = kernels::fma_of(src[i], a, b);
    if constexpr (Residual) v = apply_binary(BinaryOp::add, v, res[i]);
    if constexpr (Relu) v = apply_unary(UnaryOp::relu, v);
    dst[i] = v;
  }
}
inline void epilogue_row(float* dst, const float* src, int64_t n, float a, float b,
                         const float* res, bool relu) {
  if (res) relu ? epilogue_row_impl<true, true>(dst, src, n, a, b, res)
                : epilogue_row_impl<true, false>(dst, src, n, a, b, res);
  else relu ? epilogue_row_impl<false, true>(dst, src, n, a, b, res)
            : epilogue_row_impl<false, false>(dst, src, n, a, b, res);
}

// The epilogue as its own pass over y, where the conv did not run it in its output copy.
void apply_epilogue(float* y, const ConvGeom& g, const ConvEpilogue& e) {
  const int64_t pq = g.pq();
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t k = 0; k < g.k; ++k) {
      float* row = y + (n * g.k + k) * pq;
      epilogue_row(row, row, pq, e.scale[k], e.shift[k], e.residual ? e.residual + (row - y) : nullptr,
                   e.relu);
    }
}

#if MQ_HAVE_SGEMM_KERNEL
// Phase planes of the zero-padded x_n for the stride-s forward: phase (a, b) holds the padded
// input's rows a, a + s, ... and columns b, b + s, ... as a [C, hph, wph] block, phases in
// (a, b) order. Tap (ri, si) of output (p, q) reads phase (ri % s, si % s) at row p + ri / s,
// column q + si / s. With s = 1 there is one phase: the padded input itself.
struct PhaseLayout {
  int64_t row_phases, col_phases, hph, wph;
  int64_t plane() const { return hph * wph; }
  int64_t size(int64_t c) const { return row_phases * col_phases * c * plane(); }
  // Offset of tap (ci, ri, si) for output (0, 0).
  int64_t tap(const ConvGeom& g, int64_t ci, int64_t ri, int64_t si) const {
    const int64_t phase = (ri % g.stride) * col_phases + si % g.stride;
    return (phase * g.c + ci) * plane() + (ri / g.stride) * wph + si / g.stride;
  }
};

PhaseLayout phase_layout(const ConvGeom& g) {
  return {std::min(g.stride, g.r), std::min(g.stride, g.s), g.p + (g.r - 1) / g.stride,
          g.q + (g.s - 1) / g.stride};
}

// Short row copies (8 to 34 floats in ResNet's layers): masked AVX-512 moves instead of a
// memcpy call per row, and a stride-2 gather that takes the even lanes of two vectors. Plain
// loops elsewhere (a copy has no rounding: the bits are the same).
#if defined(__AVX512F__)
inline void copy_row(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
}
inline void copy_row_stride2(float* dst, const float* src, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {  // reads src[2i, 2i + 31]; the last read is src[2(n - 1)] at most
    const __m512 lo = _mm512_loadu_ps(src + 2 * i);
    const __m512 hi = _mm512_maskz_loadu_ps(__mmask16(0x7FFF), src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(lo, even, hi));
  }
  for (; i < n; ++i) dst[i] = src[2 * i];
}
// dst[2 j] = even[j], dst[2 j + 1] = odd[j] for j < n.
inline void interleave_row(float* dst, const float* even, const float* odd, int64_t n) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  auto mask = [](int64_t k) { return k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << k) - 1u); };
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t r = std::min<int64_t>(16, n - j);
    const __m512 e = _mm512_maskz_loadu_ps(mask(r), even + j), o = _mm512_maskz_loadu_ps(mask(r), odd + j);
    _mm512_mask_storeu_ps(dst + 2 * j, mask(2 * std::min<int64_t>(r, 8)), _mm512_permutex2var_ps(e, lo, o));
    if (r > 8) _mm512_mask_storeu_ps(dst + 2 * j + 16, mask(2 * (r - 8)), _mm512_permutex2var_ps(e, hi, o));
  }
}
#else
inline void copy_row(float* dst, const float* src, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}
inline void copy_row_stride2(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[2 * i];
}
inline void interleave_row(float* dst, const float* even, const float* odd, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    dst[2 * j] = even[j];
    dst[2 * j + 1] = odd[j];
  }
}
#endif

void fill_phases(const float* x, const ConvGeom& g, const PhaseLayout& L, float* out) {
  const int64_t st = g.stride;
  for (int64_t a = 0; a < L.row_phases; ++a)
    for (int64_t b = 0; b < L.col_phases; ++b)
      for (int64_t ci = 0; ci < g.c; ++ci) {
        float* plane = out + ((a * L.col_phases + b) * g.c + ci) * L.plane();
        const float* xc = x + ci * g.h * g.w;
        // Columns v whose input column v s + b - pad lies in [0, w): [v0, v1).
        int64_t v0, v1;
        valid_range(L.wph, g.w, st, g.pad, b, v0, v1);
        for (int64_t u = 0; u < L.hph; ++u) {
          float* row = plane + u * L.wph;
          const int64_t ih = u * st + a - g.pad;
          if (ih < 0 || ih >= g.h) {
            std::fill(row, row + L.wph, 0.f);
            continue;
          }
          const float* in = xc + ih * g.w + v0 * st + b - g.pad;
          std::fill(row, row + v0, 0.f);
          if (st == 1) {
            copy_row(row + v0, in, v1 - v0);
          } else if (st == 2) {
            copy_row_stride2(row + v0, in, v1 - v0);
          } else {
            for (int64_t v = v0; v < v1; ++v) row[v] = in[(v - v0) * st];
          }
          std::fill(row + v1, row + L.wph, 0.f);
        }
      }
}

// Forward without im2col. Counting outputs on the phase width (j = p wph + q), column row
// (ci, ri, si) of output j is phases[tap(ci, ri, si) + j]: every column row is a shifted view
// of the phase planes, so the GEMM takes B's rows from a table of offsets (in the
// channel-blocked order im2col used, so the sums are the same bit for bit) and reads about one
// copy of the input instead of writing and reading a CRS x PQ matrix. The wph - Q extra outputs
// per row are dropped when the result is copied into y.
// `rows` lists the depth rows in summation order (depth blocks of `kc` rows, see sgemm), `wa`
// is W laid out in that order.
void forward_shifted(const float* x, const float* wa, float* y, const ConvGeom& g,
                     const std::vector<int64_t>& rows, int64_t kc, const ConvEpilogue* ep) {
  const PhaseLayout L = phase_layout(g);
  const int64_t crs = static_cast<int64_t>(rows.size()), pq = g.pq();
  const int64_t span = (g.p - 1) * L.wph + g.q;  // the last output reads the buffer's last float
  // Stride 1 without padding: the phase plane is x_n itself.
  const bool direct = g.stride == 1 && g.pad == 0;
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    const float* xn = x + n * g.c * g.h * g.w;
    const float* xp = xn;
    if (!direct) {
      float* buf = scratch<float>(size_t(L.size(g.c)), 0);
      fill_phases(xn, g, L, buf);
      xp = buf;
    }
    float* out = scratch<float>(size_t(g.k * span), 1);
    sgemm(g.k, span, crs, wa, crs, 1, xp, 0, out, span, false, kc, rows.data());
    float* yn = y + n * g.k * pq;
    for (int64_t k = 0; k < g.k; ++k)
      for (int64_t pi = 0; pi < g.p; ++pi) {
        float* dst = yn + k * pq + pi * g.q;
        const float* src = out + k * span + pi * L.wph;
        if (!ep) {
          copy_row(dst, src, g.q);
          continue;
        }
        const float* res = ep->residual ? ep->residual + (dst - y) : nullptr;
        epilogue_row(dst, src, g.q, ep->scale[k], ep->shift[k], res, ep->relu);
      }
  }
}

// The forward's depth rows: (ci, ri, si) in the channel-blocked order of col_row.
std::vector<int64_t> forward_rows(const ConvGeom& g, int64_t cb) {
  const PhaseLayout L = phase_layout(g);
  std::vector<int64_t> rows(static_cast<size_t>(g.crs()));
  for (int64_t ci = 0; ci < g.c; ++ci)
    for (int64_t ri = 0; ri < g.r; ++ri)
      for (int64_t si = 0; si < g.s; ++si) rows[col_row(g, ci, ri, si, cb)] = L.tap(g, ci, ri, si);
  return rows;
}

// The output phases of a square-kernel conv's input gradient, for both routines below: phase
// (a, b) of gx (rows s m + a, columns s j + b; with stride 1 the one phase is gx itself)
// receives tap (ri, si) only where s divides a + pad - ri and b + pad - si, from gy shifted by
// ((a + pad - ri) / s, (b + pad - si) / s). Taps in (ri, si) order and W^T laid out taps outer,
// K inner: per tap one FMA chain over K, the taps added in order, the im2col path's sums.
struct GradPhase {
  int64_t a, b;
  std::vector<std::pair<int64_t, int64_t>> shifts;  // gy's shift per tap
  std::vector<float> wa;                            // [C, taps * K]
};

std::vector<GradPhase> grad_phases(const float* w, const ConvGeom& g) {
  const int64_t st = g.stride;
  std::vector<GradPhase> phases;
  for (int64_t a = 0; a < st; ++a)
    for (int64_t b = 0; b < st; ++b) {
      GradPhase ph{a, b, {}, {}};
      std::vector<std::pair<int64_t, int64_t>> taps;
      for (int64_t ri = 0; ri < g.r; ++ri)
        for (int64_t si = 0; si < g.s; ++si)
          if ((a + g.pad - ri) % st == 0 && (b + g.pad - si) % st == 0) {
            taps.emplace_back(ri, si);
            ph.shifts.emplace_back((a + g.pad - ri) / st, (b + g.pad - si) / st);
          }
      const int64_t depth = int64_t(taps.size()) * g.k;
      ph.wa.resize(size_t(g.c * depth));
      for (size_t t = 0; t < taps.size(); ++t)
        for (int64_t k = 0; k < g.k; ++k)
          for (int64_t c = 0; c < g.c; ++c)
            ph.wa[size_t(c * depth + int64_t(t) * g.k + k)] =
                w[((k * g.c + c) * g.r + taps[t].first) * g.s + taps[t].second];
      phases.push_back(std::move(ph));
    }
  return phases;
}

#if MQ_SGEMM_MASKED_ROWS
// Convs whose taps shift a whole plane read them straight from the unpadded planes through
// sgemm's masked rows: tap (dy, dx) of output pixel j of an h x w plane reads plane[j + dy w +
// dx] where that pixel lies inside the plane, +0 elsewhere, which is what a zero-padded copy
// holds there, so the sums are the same bit for bit; without the copy, and without the padded
// layout's extra columns (wph - Q per row, 22% of an 8x8 plane's) and the copy of the result
// out of it. That is the forward and the input gradient of a "same" stride-1 conv (output
// plane = input plane) and each output phase of a stride-s conv's input gradient where the
// input is s times the output (ResNet's downsampling convs).
bool same_stride1(const ConvGeom& g) { return g.stride == 1 && g.p == g.h && g.q == g.w; }

// Planes whose size is a multiple of 4 KB (32x32 floats) would put every channel's tap row in
// one L1 set (the 16 rows of a depth block overflow its ways); such planes are read from a
// copy with a 64-byte gap between channels.
int64_t plane_stride(int64_t hw) { return hw % 1024 == 0 ? hw + 16 : hw; }

// The `planes` h x w planes of one image as the masked rows read them: x itself, or a copy
// where plane_stride pads them.
const float* strided_planes(const float* x, int64_t planes, int64_t hw) {
  const int64_t cs = plane_stride(hw);
  if (cs == hw) return x;
  float* buf = scratch<float>(size_t(planes * cs), 0);
  for (int64_t c = 0; c < planes; ++c) copy_row(buf + c * cs, x + c * hw, hw);
  return buf;
}

// The masked rows of one depth order over h x w planes: tap t shifts by shifts[t]; depth row
// l reads plane `ch` through tap t (set(l, ch, t)).
struct MaskedRows {
  int64_t h, w, cs, nvec;
  std::vector<std::pair<int64_t, int64_t>> shifts;  // (dy, dx) per tap
  std::vector<uint16_t> words;                      // [tap][16-pixel vector of the plane]
  std::vector<int64_t> rows;                        // per depth row: its plane offset
  std::vector<const uint16_t*> masks;               // per depth row: its tap's words

  MaskedRows(int64_t h_, int64_t w_, std::vector<std::pair<int64_t, int64_t>> taps, int64_t depth)
      : h(h_), w(w_), cs(plane_stride(h_ * w_)), nvec((h_ * w_ + 15) / 16), shifts(std::move(taps)),
        words(shifts.size() * size_t(nvec), 0), rows(size_t(depth)), masks(size_t(depth)) {
    for (size_t t = 0; t < shifts.size(); ++t)
      for (int64_t j = 0; j < h * w; ++j) {
        const int64_t y = j / w + shifts[t].first, x = j % w + shifts[t].second;
        if (y >= 0 && y < h && x >= 0 && x < w) words[t * size_t(nvec) + size_t(j / 16)] |= uint16_t(1u << (j % 16));
      }
  }
  void set(int64_t l, int64_t ch, size_t t) {
    rows[size_t(l)] = ch * cs + shifts[t].first * w + shifts[t].second;
    masks[size_t(l)] = words.data() + t * size_t(nvec);
  }
};

// The forward of a same stride-1 conv: W (in the depth order `cb` of col_row) times the
// masked tap rows of x_n, written straight into y_n.
void forward_masked(const float* x, const float* wa, float* y, const ConvGeom& g, int64_t cb,
                    int64_t kc, const ConvEpilogue* ep) {
  const int64_t hw = g.h * g.w, crs = g.crs();
  std::vector<std::pair<int64_t, int64_t>> taps;  // tap ri * s + si
  for (int64_t ri = 0; ri < g.r; ++ri)
    for (int64_t si = 0; si < g.s; ++si) taps.emplace_back(ri - g.pad, si - g.pad);
  MaskedRows mr(g.h, g.w, std::move(taps), crs);
  for (int64_t ci = 0; ci < g.c; ++ci)
    for (int64_t ri = 0; ri < g.r; ++ri)
      for (int64_t si = 0; si < g.s; ++si) mr.set(col_row(g, ci, ri, si, cb), ci, size_t(ri * g.s + si));
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    float* yn = y + n * g.k * hw;
    sgemm(g.k, hw, crs, wa, crs, 1, strided_planes(x + n * g.c * hw, g.c, hw), 0, yn, hw, false,
          kc, mr.rows.data(), mr.masks.data());
    if (!ep) continue;
    for (int64_t k = 0; k < g.k; ++k) {
      float* row = yn + k * hw;
      epilogue_row(row, row, hw, ep->scale[k], ep->shift[k],
                   ep->residual ? ep->residual + (row - y) : nullptr, ep->relu);
    }
  }
}

// The input gradient where the input is exactly stride times the output (stride 1: a same
// conv) and the kernel is square: output phase (a, b) of gx (see backward_input_phases) is a
// correlation of gy with the taps that reach it, each a whole-plane shift of gy's P x Q
// planes. Per tap (in (ri, si) order) one FMA chain over the K rows, the taps added in order:
// the im2col path's sums. Returns false where it does not apply.
bool backward_input_masked(const float* gy, const float* w, float* gx, const ConvGeom& g) {
  const int64_t st = g.stride;
  if (g.r != g.s || g.r < 2 || g.h != st * g.p || g.w != st * g.q) return false;
  const int64_t pq = g.pq(), hw = g.h * g.w;
  struct Phase {
    GradPhase gp;
    MaskedRows mr;
  };
  std::vector<Phase> phases;
  for (GradPhase& gp : grad_phases(w, g)) {
    const int64_t depth = int64_t(gp.shifts.size()) * g.k;
    MaskedRows mr(g.p, g.q, gp.shifts, depth);
    for (size_t t = 0; t < gp.shifts.size(); ++t)
      for (int64_t k = 0; k < g.k; ++k) mr.set(int64_t(t) * g.k + k, k, t);
    phases.push_back({std::move(gp), std::move(mr)});
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    const float* planes = strided_planes(gy + n * g.k * pq, g.k, pq);
    float* gxn = gx + n * g.c * hw;
    if (st == 1) {  // the one phase is gx_n itself
      const Phase& ph = phases[0];
      const int64_t depth = int64_t(ph.mr.rows.size());
      sgemm(g.c, pq, depth, ph.gp.wa.data(), depth, 1, planes, 0, gxn, pq, false, g.k,
            ph.mr.rows.data(), ph.mr.masks.data());
      continue;
    }
    // Each phase into its own [C, P*Q] block, then the rows of gx interleaved from them.
    float* out = scratch<float>(size_t(st * st * g.c * pq), 1);
    for (size_t i = 0; i < phases.size(); ++i) {
      const Phase& ph = phases[i];
      const int64_t depth = int64_t(ph.mr.rows.size());
      sgemm(g.c, pq, depth, ph.gp.wa.data(), depth, 1, planes, 0, out + int64_t(i) * g.c * pq, pq,
            false, g.k, ph.mr.rows.data(), ph.mr.masks.data());
    }
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t m = 0; m < g.p; ++m)
        for (int64_t a = 0; a < st; ++a) {
          const float* src = out + ((a * st) * g.c + c) * pq + m * g.q;  // phase (a, 0)
          float* dst = gxn + c * hw + (st * m + a) * g.w;
          if (st == 2) {
            interleave_row(dst, src, src + g.c * pq, g.q);  // phases (a, 0) and (a, 1)
            continue;
          }
          for (int64_t b = 0; b < st; ++b)
            for (int64_t j = 0; j < g.q; ++j) dst[st * j + b] = src[b * g.c * pq + j];
        }
  }
  return true;
}
#endif

// The input gradient of a square-kernel conv without col2im. Output phase (a, b) of gx (rows
// s m + a, columns s j + b; with stride 1 the one phase is gx itself) receives tap ri only
// where s divides a + pad - ri, from gy row m + d with d = (a + pad - ri) / s (columns alike):
// per phase, a stride-1 correlation of gy with those taps (with stride 1, all of them: the
// forward of gy with the flipped filters), read as shifted views of gy zero-padded by -min d,
// the GEMM's rows from a table of offsets as in forward_shifted. Sums in the order of the
// im2col path: per tap one FMA chain over k (a depth block of K rows), the taps added in
// (ri, si) order, taps that fall outside gy adding +-0. Returns false where it does not apply,
// or where the im2col path is faster (conv_bench, benchmarks/README.md): a 1x1 kernel (col2im
// is then a plain scatter), stride 1 with pad > r - 1, and strided convs whose phase planes are
// under 16x16 (ResNet's 8x8 ones: four GEMMs over 71-column spans lose more to their remainder
// tiles than col2im costs).
bool backward_input_phases(const float* gy, const float* w, float* gx, const ConvGeom& g) {
  const int64_t st = g.stride;
  const int64_t hm = (g.h + st - 1) / st, wm = (g.w + st - 1) / st;  // largest phase plane
  if (g.r != g.s || g.r < 2) return false;
  if (st == 1 ? g.pad > g.r - 1 : hm * wm < 256) return false;
  std::vector<GradPhase> grad = grad_phases(w, g);
  int64_t dmin = 0, dmax = 0;  // the shifts' range (the kernel is square: rows and columns alike)
  for (const GradPhase& gp : grad)
    for (const auto& [dy, dx] : gp.shifts) {
      dmin = std::min({dmin, dy, dx});
      dmax = std::max({dmax, dy, dx});
    }
  const int64_t pad = -dmin, win = dmax + pad + 1;
  // gy as the input of a stride-1 conv whose outputs are one phase plane (hm x wm).
  const ConvGeom t{g.n, g.k, g.p, g.q, g.c, win, win, hm, wm, 1, pad};
  const PhaseLayout L = phase_layout(t);
  const int64_t span = (hm - 1) * L.wph + wm;
  const bool direct = pad == 0 && L.hph == g.p && L.wph == g.q;  // gy_n is the padded plane
  struct Phase {
    GradPhase gp;
    std::vector<int64_t> rows;  // depth rows: per tap, K rows
  };
  std::vector<Phase> phases;
  for (GradPhase& gp : grad) {
    std::vector<int64_t> rows(gp.shifts.size() * size_t(g.k));
    for (size_t i = 0; i < gp.shifts.size(); ++i)
      for (int64_t k = 0; k < g.k; ++k)
        rows[i * size_t(g.k) + size_t(k)] = L.tap(t, k, gp.shifts[i].first + pad, gp.shifts[i].second + pad);
    phases.push_back({std::move(gp), std::move(rows)});
  }
  const int64_t hw = g.h * g.w;
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    const float* gyn = gy + n * g.k * g.pq();
    const float* padded = gyn;
    if (!direct) {
      float* buf = scratch<float>(size_t(L.size(g.k)), 0);
      fill_phases(gyn, t, L, buf);
      padded = buf;
    }
    float* gxn = gx + n * g.c * hw;
    for (const Phase& ph : phases) {
      const int64_t depth = static_cast<int64_t>(ph.rows.size());
      const int64_t mh = (g.h - ph.gp.a + st - 1) / st, mw = (g.w - ph.gp.b + st - 1) / st;
      if (depth == 0) {  // no tap reaches these positions
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t m = 0; m < mh; ++m)
            for (int64_t j = 0; j < mw; ++j) gxn[c * hw + (st * m + ph.gp.a) * g.w + st * j + ph.gp.b] = 0.f;
        continue;
      }
      float* out = scratch<float>(size_t(g.c * span), 1);
      sgemm(g.c, span, depth, ph.gp.wa.data(), depth, 1, padded, 0, out, span, false, g.k,
            ph.rows.data());
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t m = 0; m < mh; ++m) {
          const float* src = out + c * span + m * L.wph;
          float* dst = gxn + c * hw + (st * m + ph.gp.a) * g.w + ph.gp.b;
          if (st == 1) {
            copy_row(dst, src, mw);
          } else {
            for (int64_t j = 0; j < mw; ++j) dst[st * j] = src[j];
          }
        }
    }
  }
  return true;
}
#endif

// f32 forward sums each output as PyTorch 1.13's CPU (oneDNN) f32 convolution does, so float
// rounding matches it bit for bit (a ReLU mask decided by the last bit changes the gradient by
// a whole element; the golden traces are PyTorch f32 runs): per block of 16 input channels one
// FMA chain over (r, s, c), the block sums added in channel order; a 1x1 conv is one chain over
// c. The columns and W are laid out in that order and the GEMM's depth blocks are the channel
// blocks.
constexpr int64_t kFwdChannelBlock = 16;

template <class T>
void forward_impl(const Tensor& xt, const Tensor& wt, Tensor& yt, const ConvGeom& g,
                  const ConvEpilogue* ep = nullptr) {
  const T* x = xt.data<T>();
  const T* w = wt.data<T>();
  T* y = yt.data<T>();
  const int64_t crs = g.crs(), pq = g.pq();
#if MQ_HAVE_SGEMM_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    const bool blocked = g.r * g.s > 1;
    const int64_t cb = blocked ? kFwdChannelBlock : 0;
    const int64_t kc = blocked ? std::min(g.c, kFwdChannelBlock) * g.r * g.s : int64_t(1) << 40;
    std::vector<float> wp;
    const float* wa = w;
    if (blocked) {
      wp.resize(size_t(g.k * crs));
      for (int64_t k = 0; k < g.k; ++k)
        for (int64_t ci = 0; ci < g.c; ++ci)
          for (int64_t ri = 0; ri < g.r; ++ri)
            for (int64_t si = 0; si < g.s; ++si)
              wp[k * crs + col_row(g, ci, ri, si, cb)] = w[k * crs + (ci * g.r + ri) * g.s + si];
      wa = wp.data();
    }
#if MQ_SGEMM_MASKED_ROWS
    if (!g.pointwise() && same_stride1(g)) {
      forward_masked(x, wa, y, g, cb, kc, ep);
      return;
    }
#endif
    if (!g.pointwise()) {
      forward_shifted(x, wa, y, g, forward_rows(g, cb), kc, ep);
      return;
    }
#pragma omp parallel for schedule(dynamic)
    for (int64_t n = 0; n < g.n; ++n)
      sgemm(g.k, pq, crs, wa, crs, 1, x + n * g.c * g.h * g.w, pq, y + n * g.k * pq, pq, false, kc);
    if (ep) apply_epilogue(y, g, *ep);
    return;
  }
#endif
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    const T* xn = x + n * g.c * g.h * g.w;
    const T* col = xn;
    if (!g.pointwise()) {
      T* buf = scratch<T>(size_t(crs * pq), 0);
      im2col(xn, g, buf);
      col = buf;
    }
    conv_gemm<T>(g.k, pq, crs, w, crs, 1, col, y + n * g.k * pq);
  }
  if constexpr (std::is_same_v<T, float>) {
    if (ep) apply_epilogue(y, g, *ep);
  }
}

template <class T>
void backward_input_impl(const Tensor& gyt, const Tensor& wt, Tensor& gxt, const ConvGeom& g) {
  const T* gy = gyt.data<T>();
  const T* w = wt.data<T>();
  T* gx = gxt.data<T>();
  const int64_t crs = g.crs(), pq = g.pq(), chw = g.c * g.h * g.w;
#if MQ_HAVE_SGEMM_KERNEL
  if constexpr (std::is_same_v<T, float>) {
#if MQ_SGEMM_MASKED_ROWS
    if (backward_input_masked(gy, w, gx, g)) return;
#endif
    if (backward_input_phases(gy, w, gx, g)) return;
  }
#endif
#pragma omp parallel for schedule(dynamic)
  for (int64_t n = 0; n < g.n; ++n) {
    // gcol = W^T * gy_n: W^T is read through strides (ars = 1, acs = CRS).
    if (g.pointwise()) {
      conv_gemm<T>(crs, pq, g.k, w, 1, crs, gy + n * g.k * pq, gx + n * chw);
      continue;
    }
    T* buf = scratch<T>(size_t(crs * pq), 0);
    conv_gemm<T>(crs, pq, g.k, w, 1, crs, gy + n * g.k * pq, buf);
    std::fill(gx + n * chw, gx + (n + 1) * chw, T(0));
    col2im(buf, g, gx + n * chw);
  }
}

// Images per partial sum of the weight gradient. The partials are fixed groups of images, handed
// to the threads dynamically (a thread on a busy core takes fewer) and added in group order, so
// the sum is the same at any thread count and under any load.
constexpr int64_t kWgradImagesPerPartial = 8;

template <class T>
void backward_weight_impl(const Tensor& gyt, const Tensor& xt, Tensor& gwt, const ConvGeom& g) {
  const T* gy = gyt.data<T>();
  const T* x = xt.data<T>();
  const int64_t crs = g.crs(), pq = g.pq(), kcrs = g.k * crs;
  const int64_t groups = (g.n + kWgradImagesPerPartial - 1) / kWgradImagesPerPartial;
  // Per-group partial sums of gW^T [CRS, K], reduced (and transposed) at the end.
  std::vector<T> partial(size_t(groups) * kcrs, T(0));
#pragma omp parallel for schedule(dynamic) if (groups > 1)
  for (int64_t grp = 0; grp < groups; ++grp) {
    T* acc = partial.data() + grp * kcrs;
    const int64_t n1 = std::min(g.n, (grp + 1) * kWgradImagesPerPartial);
    for (int64_t n = grp * kWgradImagesPerPartial; n < n1; ++n) {
      const T* xn = x + n * g.c * g.h * g.w;
      const T* col = xn;
      if (!g.pointwise()) {
        T* buf = scratch<T>(size_t(crs * pq), 0);
        im2col(xn, g, buf);
        col = buf;
      }
      const T* gyn = gy + n * g.k * pq;
#if MQ_HAVE_SGEMM_KERNEL
      if constexpr (std::is_same_v<T, float>) {
        // gW^T [CRS, K] += col [CRS, PQ] * gy_n^T [PQ, K]. Transposing gy_n (K*PQ values) is
        // 9x cheaper than transposing the columns, and lets the kernel stream both operands.
        float* gyt_buf = scratch<float>(size_t(pq * g.k), 1);
        for (int64_t i0 = 0; i0 < pq; i0 += 64)
          for (int64_t k = 0; k < g.k; ++k)
            for (int64_t i = i0; i < std::min(pq, i0 + 64); ++i) gyt_buf[i * g.k + k] = gyn[k * pq + i];
        sgemm(crs, g.k, pq, col, pq, 1, gyt_buf, g.k, acc, g.k, true);
        continue;
      }
#endif
      MapMat<T>(acc, crs, g.k).noalias() +=
          CMapMat<T>(col, crs, pq) * CMapMat<T>(gyn, g.k, pq).transpose();
    }
  }
  // Groups added in order into the first partial (contiguous streams), then transposed.
  T* total = partial.data();
  for (int64_t grp = 1; grp < groups; ++grp) {
    const T* part = partial.data() + grp * kcrs;
#pragma omp simd
    for (int64_t j = 0; j < kcrs; ++j) total[j] += part[j];
  }
  T* gw = gwt.data<T>();
  for (int64_t k = 0; k < g.k; ++k)
    for (int64_t i = 0; i < crs; ++i) gw[k * crs + i] = total[i * g.k + k];
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p) {
  if (p.groups > 1) return conv2d_grouped_forward(x, w, y, p);
  if (conv_library(ConvPass::forward, x.size(1), w.size(0), w.size(2), w.size(3), p) ==
          ConvLibrary::onednn &&
      onednn_conv_forward(x, w, y, p))
    return;
  ConvGeom g = geom_of(x, w, y, p);
  dispatch_floating(x.dtype(), "conv2d", [&](auto tag) { forward_impl<decltype(tag)>(x, w, y, g); });
}

void conv2d_forward_fused(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p,
                          const ConvEpilogue& e) {
  MQ_CHECK(p.groups == 1, "conv2d_forward_fused: groups {} (only ungrouped convs are fused)",
           p.groups);
  MQ_CHECK(x.dtype() == DType::f32 && x.is_cpu(), "conv2d_forward_fused: f32 CPU tensors only, got {}",
           x.describe());
  const ConvGeom g = geom_of(x, w, y, p);
  // Where oneDNN takes the forward its sums are mq's bit for bit (conv_library.h); the
  // epilogue then runs as its own pass, with the same per-element math.
  if (conv_library(ConvPass::forward, g.c, g.k, g.r, g.s, p) == ConvLibrary::onednn &&
      onednn_conv_forward(x, w, y, p)) {
    apply_epilogue(y.data<float>(), g, e);
    return;
  }
  forward_impl<float>(x, w, y, g, &e);
}

void conv2d_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p) {
  if (p.groups > 1) return conv2d_grouped_backward_input(gy, w, gx, p);
  if (conv_library(ConvPass::backward_input, gx.size(1), w.size(0), w.size(2), w.size(3), p) ==
          ConvLibrary::onednn &&
      onednn_conv_backward_input(gy, w, gx, p))
    return;
  ConvGeom g = geom_of(gx, w, gy, p);
  dispatch_floating(gy.dtype(), "conv2d_backward_input",
                    [&](auto tag) { backward_input_impl<decltype(tag)>(gy, w, gx, g); });
}

void conv2d_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw, Conv2dParams p) {
  if (p.groups > 1) return conv2d_grouped_backward_weight(gy, x, gw, p);
  if (conv_library(ConvPass::backward_weight, x.size(1), gw.size(0), gw.size(2), gw.size(3), p) ==
          ConvLibrary::onednn &&
      onednn_conv_backward_weight(gy, x, gw, p))
    return;
  ConvGeom g = geom_of(x, gw, gy, p);
  dispatch_floating(gy.dtype(), "conv2d_backward_weight",
                    [&](auto tag) { backward_weight_impl<decltype(tag)>(gy, x, gw, g); });
}

}  // namespace mq::cpu
