// LSTMFC on the CPU (see meta.h): per chunk of rows, the recurrent GEMM and the cell in one pass
// that leaves K = da/dm behind, so the backward is K^T times a thin matrix (one GEMM, no
// recomputed gates). The cell loops run over the hidden units with `omp simd` (the float
// exp/tanh of meta_math.h have no calls or branches, so they vectorize), the units past each
// row's last whole vector several rows at a time (CellTails). The f32 GEMMs run on
// the conv's sgemm kernel where the machine has one (1.5-1.7x Eigen's rate on these shapes,
// benchmarks/README.md), f64 and other machines on Eigen.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/eigen_util.h"
#include "kernels/meta/meta.h"
#include "kernels/nn/sgemm_kernel.h"

namespace mq::kernels {
namespace {

using cpu::CMapMat;
using cpu::MapMat;
using cpu::RowMat;

// Rows per GEMM: the chunk's [rows, 4h] slice of K stays in L2 while the cell reads it back.
constexpr int64_t kChunkRows = 256;
// The backward's reductions go to a fixed number of row groups summed in order, so the
// parameter gradients do not depend on the thread count.
constexpr int64_t kGroups = 32;

// True where f32 products run on the sgemm kernel.
template <class T>
constexpr bool sgemm_f32 = MQ_HAVE_SGEMM_KERNEL && std::is_same_v<T, float>;

// K [rows, 4h] = h_prev [rows, h] W_hh^T (w_hh_t: W_hh^T row-major, for the sgemm kernel).
template <class T>
void recurrent_part(const T* h_prev, const T* w_hh, const T* w_hh_t, int64_t rows, int64_t h,
                    T* K) {
#if MQ_HAVE_SGEMM_KERNEL
  if constexpr (sgemm_f32<T>) {
    cpu::sgemm(rows, 4 * h, h, h_prev, h, 1, w_hh_t, 4 * h, K, 4 * h, false);
    return;
  }
#endif
  MapMat<T>(K, rows, 4 * h).noalias() =
      CMapMat<T>(h_prev, rows, h) * CMapMat<T>(w_hh, 4 * h, h).transpose();
}

// acc_t [bw, 4h] += B^T [bw, rows] K [rows, 4h], B [rows, bw] row-major (its first `rows`
// rows): the transpose of K^T B, so the sgemm kernel streams K's rows in place (the wide
// operand, 4h columns) and broadcasts B's elements, read through strides as B^T (each step
// reads 6 neighbours of one row of B, no transposed copy). Every element is the same chain over
// rows as K^T B's.
template <class T>
void add_bt_times_k(const RowMat<T>& b, const T* K, int64_t rows, int64_t h, RowMat<T>& acc_t) {
#if MQ_HAVE_SGEMM_KERNEL
  if constexpr (sgemm_f32<T>) {
    cpu::sgemm(b.cols(), 4 * h, rows, b.data(), 1, b.cols(), K, 4 * h, acc_t.data(), 4 * h, true);
    return;
  }
#endif
  acc_t.noalias() += b.topRows(rows).transpose() * CMapMat<T>(K, rows, 4 * h);
}

// One hidden unit of the cell, shared by the row loop and the tails: pre-activations in
// PyTorch's order x w_ih + b_ih + r + b_hh (r, the recurrent part, is zero when the state is),
// the gates and new state, and K's four entries d = da/dm.
template <class T>
[[gnu::always_inline]] inline LstmGates<T> cell_unit(T xi, const T (&w)[4], const T (&bi)[4],
                                                     const T (&r)[4], const T (&bh)[4], T c0,
                                                     T fw, T (&d)[4]) {
  T a[4];
  for (int q = 0; q < 4; ++q) a[q] = xi * w[q] + bi[q] + r[q] + bh[q];
  const LstmGates<T> s = lstm_gates(a[0], a[1], a[2], a[3], c0);
  lstm_gates_backward(s, c0, fw, d[0], d[1], d[2], d[3]);
  return s;
}

// The cell for hidden units [0, hv) of one row (hv a multiple of the vector width, so the
// vectorized loop leaves no scalar remainder): `k` holds the recurrent part of the
// pre-activations on entry (when Carried; otherwise the state is zero and `k`, `cp` are not
// read) and K on exit. Returns their part of fc_w . h'. Written as one flat loop of straight-line
// math over restrict pointers so GCC vectorizes it.
template <class T, bool Carried>
[[gnu::always_inline]] inline T cell_row(const LstmParams<T>& p, int64_t hv, T xi,
                                         const T* __restrict cp, T* __restrict k,
                                         T* __restrict hn, T* __restrict cn) {
  const int64_t h = p.hidden;
  const T* __restrict wi = p.w_ih;
  const T* __restrict bi = p.b_ih;
  const T* __restrict bh = p.b_hh;
  const T* __restrict fw = p.fc_w;
  T m = 0;
#pragma omp simd reduction(+ : m)
  for (int64_t j = 0; j < hv; ++j) {
    T w[4], b1[4], r[4], b2[4], d[4];
    for (int q = 0; q < 4; ++q) {
      const int64_t u = q * h + j;
      w[q] = wi[u];
      b1[q] = bi[u];
      r[q] = Carried ? k[u] : T(0);
      b2[q] = bh[u];
    }
    const LstmGates<T> s = cell_unit(xi, w, b1, r, b2, Carried ? cp[j] : T(0), fw[j], d);
    hn[j] = s.h;
    cn[j] = s.c;
    m += fw[j] * s.h;
    for (int q = 0; q < 4; ++q) k[q * h + j] = d[q];
  }
  return m;
}

// The hidden units past the last whole vector of each row (h = 100: 4 of them), several rows'
// at once: a vector loop over the tails laid side by side (4 rows x 4 units in 16 lanes)
// instead of a scalar loop per row, which cost as much as the row's whole vectors. Element for
// element the same math; each row's sum adds its tail units in order after the vector part.
template <class T>
struct CellTails {
  static constexpr int kLanes = 64 / sizeof(T);
  int64_t j0, len, rows_per_pack;  // tail units [j0, j0 + len) of each row
  alignas(64) T wi[4][kLanes], bi[4][kLanes], bh[4][kLanes], fw[kLanes];

  CellTails(const LstmParams<T>& p, int64_t first) : j0(first), len(p.hidden - first) {
    rows_per_pack = len > 0 ? kLanes / len : 0;
    for (int t = 0; t < kLanes; ++t) {
      const int64_t j = len > 0 ? j0 + t % len : 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t u = q * p.hidden + j;
        wi[q][t] = p.w_ih[u];
        bi[q][t] = p.b_ih[u];
        bh[q][t] = p.b_hh[u];
      }
      fw[t] = p.fc_w[j];
    }
  }

  // Rows [r0, r1): their tail units of K, h', c' and their sums m[row - r0].
  template <bool Carried>
  void run(int64_t h, const T* x, const T* c_prev, int64_t r0, int64_t r1, T* K, T* h_new,
           T* c_new, T* m) const {
    for (int64_t row = r0; row < r1; row += rows_per_pack) {
      const int64_t lanes = std::min(rows_per_pack, r1 - row) * len;
      alignas(64) T kk[4 * kLanes] = {}, xi[kLanes] = {}, c0[kLanes] = {}, hv[kLanes], cv[kLanes];
      for (int64_t t = 0; t < lanes; ++t) {
        const int64_t r = row + t / len, j = j0 + t % len;
        xi[t] = x[r];
        if (Carried) {
          c0[t] = c_prev[r * h + j];
          for (int q = 0; q < 4; ++q) kk[q * kLanes + t] = K[r * 4 * h + q * h + j];
        }
      }
      const T* __restrict wq = &wi[0][0];
      const T* __restrict bq = &bi[0][0];
      const T* __restrict hq = &bh[0][0];
#pragma omp simd
      for (int t = 0; t < kLanes; ++t) {
        T w[4], b1[4], r[4], b2[4], d[4];
        for (int q = 0; q < 4; ++q) {
          const int u = q * kLanes + t;
          w[q] = wq[u];
          b1[q] = bq[u];
          r[q] = Carried ? kk[u] : T(0);
          b2[q] = hq[u];
        }
        const LstmGates<T> st = cell_unit(xi[t], w, b1, r, b2, Carried ? c0[t] : T(0), fw[t], d);
        hv[t] = st.h;
        cv[t] = st.c;
        for (int q = 0; q < 4; ++q) kk[q * kLanes + t] = d[q];
      }
      for (int64_t t = 0; t < lanes; ++t) {
        const int64_t r = row + t / len, j = j0 + t % len;
        h_new[r * h + j] = hv[t];
        c_new[r * h + j] = cv[t];
        for (int q = 0; q < 4; ++q) K[r * 4 * h + q * h + j] = kk[q * kLanes + t];
        m[r - r0] += fw[t] * hv[t];
      }
    }
  }
};

template <class T, bool Carried>
void cell_rows(const LstmParams<T>& p, const CellTails<T>& tails, const T* x, const T* g_hat,
               const T* c_prev, int64_t r0, int64_t r1, T* h_new, T* c_new, T* G, T* K) {
  const int64_t h = p.hidden;
  T m[kChunkRows];
  for (int64_t row = r0; row < r1; ++row)
    m[row - r0] = cell_row<T, Carried>(p, tails.j0, x[row],
                                       Carried ? c_prev + row * h : nullptr, K + row * 4 * h,
                                       h_new + row * h, c_new + row * h);
  if (tails.len > 0) tails.template run<Carried>(h, x, c_prev, r0, r1, K, h_new, c_new, m);
  for (int64_t row = r0; row < r1; ++row) G[row] = g_hat[row] * (m[row - r0] + p.fc_b[0]);
}

}  // namespace

template <class T>
void meta_lstm_forward_fused_cpu(const LstmParams<T>& p, const T* w_hh, const T* x,
                                 const T* g_hat, const T* h_prev, const T* c_prev, int64_t n,
                                 T* h_new, T* c_new, T* G, T* K) {
  const int64_t h = p.hidden, chunks = (n + kChunkRows - 1) / kChunkRows;
  const CellTails<T> tails(p, h / CellTails<T>::kLanes * CellTails<T>::kLanes);
  // W_hh^T [h, 4h] row-major: the sgemm kernel streams B by rows.
  std::vector<T> w_hh_t;
  if (h_prev && sgemm_f32<T>) {
    w_hh_t.resize(size_t(4 * h * h));
    for (int64_t u = 0; u < 4 * h; ++u)
      for (int64_t j = 0; j < h; ++j) w_hh_t[j * 4 * h + u] = w_hh[u * h + j];
  }
#pragma omp parallel for schedule(dynamic) if (chunks > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t r0 = ch * kChunkRows, rows = std::min(n, r0 + kChunkRows) - r0;
    if (h_prev) recurrent_part(h_prev + r0 * h, w_hh, w_hh_t.data(), rows, h, K + r0 * 4 * h);
    if (h_prev) cell_rows<T, true>(p, tails, x, g_hat, c_prev, r0, r0 + rows, h_new, c_new, G, K);
    else cell_rows<T, false>(p, tails, x, g_hat, c_prev, r0, r0 + rows, h_new, c_new, G, K);
  }
}

template <class T>
void meta_lstm_backward_fused_cpu(const LstmParams<T>& p, const T* dG, const T* g_hat,
                                  const T* x, const T* h_prev, const T* h_new, const T* K,
                                  int64_t n, const LstmGrads<T>& grads, T* w_hh_grad) {
  // Per row, da = dm * K with dm = dG * g_hat, so with B = [dm h_prev | dm x | dm]:
  // K^T B = [dW_hh | dw_ih | db] in one GEMM, computed as its transpose B^T K; dfc_w =
  // h'^T dm, dfc_b = sum dm.
  const int64_t h = p.hidden, hb = h_prev ? h : 0, bw = hb + 2;
  const int64_t groups = std::min<int64_t>(kGroups, (n + kChunkRows - 1) / kChunkRows);
  std::vector<RowMat<T>> acc(groups, RowMat<T>::Zero(bw, 4 * h));  // [dW_hh | dw_ih | db]^T
  std::vector<RowMat<T>> acc_fc(groups, RowMat<T>::Zero(1, h + 1));
#pragma omp parallel for schedule(dynamic) if (groups > 1)
  for (int64_t g = 0; g < groups; ++g) {
    RowMat<T> b(kChunkRows, bw), dm(1, kChunkRows);  // B, row i for row r0 + i
    const int64_t g0 = n * g / groups, g1 = n * (g + 1) / groups;
    for (int64_t r0 = g0; r0 < g1; r0 += kChunkRows) {
      const int64_t rows = std::min(g1, r0 + kChunkRows) - r0;
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t row = r0 + i;
        const T d = dG[row] * g_hat[row];
        dm(0, i) = d;
        T* __restrict bi = b.data() + i * bw;
        const T* __restrict hp = h_prev ? h_prev + row * h : nullptr;
#pragma omp simd
        for (int64_t j = 0; j < hb; ++j) bi[j] = d * hp[j];
        bi[hb] = d * x[row];
        bi[hb + 1] = d;
      }
      add_bt_times_k(b, K + r0 * 4 * h, rows, h, acc[g]);
      acc_fc[g].leftCols(h).noalias() +=
          dm.leftCols(rows) * CMapMat<T>(h_new + r0 * h, rows, h);
      acc_fc[g](0, h) += dm.leftCols(rows).sum();
    }
  }
  for (int64_t g = 1; g < groups; ++g) {
    acc[0] += acc[g];
    acc_fc[0] += acc_fc[g];
  }
  for (int64_t u = 0; u < 4 * h; ++u) {
    if (w_hh_grad)
      for (int64_t j = 0; j < hb; ++j) w_hh_grad[u * h + j] += acc[0](j, u);
    grads.w_ih[u] += acc[0](hb, u);
    grads.b[u] += acc[0](hb + 1, u);
  }
  for (int64_t j = 0; j < h; ++j) grads.fc_w[j] += acc_fc[0](0, j);
  grads.fc_b[0] += acc_fc[0](0, h);
}

#define MQ_LSTM_INSTANTIATE(T)                                                                   \
  template void meta_lstm_forward_fused_cpu<T>(const LstmParams<T>&, const T*, const T*,        \
                                               const T*, const T*, const T*, int64_t, T*, T*,   \
                                               T*, T*);                                         \
  template void meta_lstm_backward_fused_cpu<T>(const LstmParams<T>&, const T*, const T*,       \
                                                const T*, const T*, const T*, const T*, int64_t, \
                                                const LstmGrads<T>&, T*);
MQ_LSTM_INSTANTIATE(float)
MQ_LSTM_INSTANTIATE(double)
#undef MQ_LSTM_INSTANTIATE

}  // namespace mq::kernels
