// CPU loops of the meta-network kernels (see meta.h); the math is in meta_math.h.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "engine/error.h"
#include "kernels/meta/meta.h"

namespace mq::kernels {
namespace {

// Fixed row partition for reductions: results independent of the thread count.
constexpr int64_t kReduceRows = 4096;

int64_t blocks_of(int64_t n) { return (n + kReduceRows - 1) / kReduceRows; }

}  // namespace

void meta_cuda_fail(const char* what, const char* detail) {
  fail("CUDA error in {}: {}", what, detail);
}

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
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) G[i] = meta_scaled_value(sv, u[i], v[i]);
  } else {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) G[i] = meta_scaled_value(sv, u[i], T(1));
  }
}

template <class T>
void meta_scaled_backward_cpu(const T* dG, const T* u, const T* v, int64_t n, T* ds) {
  const int64_t blocks = blocks_of(n);
  std::vector<double> part(blocks, 0.0);
#pragma omp parallel for schedule(static) if (blocks > 4)
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

template <class T>
void meta_lstm_forward_cpu(const LstmParams<T>& p, const T* x, const T* g_hat, const T* r,
                           const T* c_prev, int64_t n, T* h_new, T* c_new, T* G) {
  const int64_t h = p.hidden;
#pragma omp parallel for schedule(static) if (n > 1024)
  for (int64_t row = 0; row < n; ++row) {
    const T xi = x[row];
    const T* rr = r ? r + row * 4 * h : nullptr;
    const T* cp = c_prev ? c_prev + row * h : nullptr;
    T* hn = h_new + row * h;
    T* cn = c_new + row * h;
    T m = 0;
    for (int64_t j = 0; j < h; ++j) {
      T a[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t q = k * h + j;
        a[k] = xi * p.w_ih[q] + p.b_ih[q] + (rr ? rr[q] : T(0)) + p.b_hh[q];
      }
      LstmGates<T> s = lstm_gates(a[0], a[1], a[2], a[3], cp ? cp[j] : T(0));
      hn[j] = s.h;
      cn[j] = s.c;
      m += p.fc_w[j] * s.h;
    }
    G[row] = g_hat[row] * (m + p.fc_b[0]);
  }
}

template <class T>
void meta_lstm_backward_cpu(const LstmParams<T>& p, const T* dG, const T* x, const T* g_hat,
                            const T* r, const T* c_prev, int64_t n, T* da,
                            const LstmGrads<T>& grads) {
  const int64_t h = p.hidden, width = 9 * h + 1;  // w_ih 4h | b 4h | fc_w h | fc_b 1
  const int64_t blocks = blocks_of(n);
  std::vector<double> part(static_cast<size_t>(blocks * width), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    double* acc = part.data() + b * width;
    const int64_t i0 = b * kReduceRows, i1 = std::min(n, i0 + kReduceRows);
    for (int64_t row = i0; row < i1; ++row) {
      const T xi = x[row];
      const T gm = dG[row] * g_hat[row];  // dL/dm
      const T* rr = r ? r + row * 4 * h : nullptr;
      const T* cp = c_prev ? c_prev + row * h : nullptr;
      T* dar = da ? da + row * 4 * h : nullptr;
      acc[9 * h] += gm;
      for (int64_t j = 0; j < h; ++j) {
        T a[4];
        for (int k = 0; k < 4; ++k) {
          const int64_t q = k * h + j;
          a[k] = xi * p.w_ih[q] + p.b_ih[q] + (rr ? rr[q] : T(0)) + p.b_hh[q];
        }
        const T c0 = cp ? cp[j] : T(0);
        LstmGates<T> s = lstm_gates(a[0], a[1], a[2], a[3], c0);
        acc[8 * h + j] += double(gm * s.h);
        T d[4];
        lstm_gates_backward(s, c0, gm * p.fc_w[j], d[0], d[1], d[2], d[3]);
        for (int k = 0; k < 4; ++k) {
          const int64_t q = k * h + j;
          acc[q] += double(d[k] * xi);
          acc[4 * h + q] += double(d[k]);
          if (dar) dar[q] = d[k];
        }
      }
    }
  }
  for (int64_t q = 0; q < width; ++q) {
    double total = 0;
    for (int64_t b = 0; b < blocks; ++b) total += part[b * width + q];
    T* dst = q < 4 * h ? grads.w_ih + q
             : q < 8 * h ? grads.b + (q - 4 * h)
             : q < 9 * h ? grads.fc_w + (q - 8 * h)
                         : grads.fc_b;
    *dst += static_cast<T>(total);
  }
}

#define MQ_META_INSTANTIATE(T)                                                                    \
  template void meta_scaled_forward_cpu<T>(const T*, const T*, const T*, int64_t, T*);           \
  template void meta_scaled_backward_cpu<T>(const T*, const T*, const T*, int64_t, T*);          \
  template void meta_lstm_forward_cpu<T>(const LstmParams<T>&, const T*, const T*, const T*,     \
                                         const T*, int64_t, T*, T*, T*);                         \
  template void meta_lstm_backward_cpu<T>(const LstmParams<T>&, const T*, const T*, const T*,    \
                                          const T*, const T*, int64_t, T*, const LstmGrads<T>&);
MQ_META_INSTANTIATE(float)
MQ_META_INSTANTIATE(double)
#undef MQ_META_INSTANTIATE

}  // namespace mq::kernels
