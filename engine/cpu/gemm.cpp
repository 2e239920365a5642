// CPU GEMM and the bias helpers of linear layers. Eigen runs single-threaded
// (EIGEN_DONT_PARALLELIZE); large products are split into row blocks over OpenMP threads.
#include <omp.h>

#include "engine/backend.h"
#include "kernels/eigen_util.h"
#include "engine/dispatch.h"
#include "kernels/cpu_threads.h"

namespace mq::cpu {
namespace {

template <class T>
void gemm_impl(const Tensor& a, bool ta, const Tensor& b, bool tb, Tensor& c, T beta) {
  const int64_t m = c.size(0), n = c.size(1);
  const int64_t k = ta ? a.size(0) : a.size(1);
  CMapMat<T> A(a.data<T>(), a.size(0), a.size(1));
  CMapMat<T> B(b.data<T>(), b.size(0), b.size(1));
  T* cp = c.data<T>();
  // Split C into row blocks (rows of op(A)); small products stay on one thread.
  const double flops = 2.0 * double(m) * double(n) * double(k);
  const int threads = flops < 4e6 ? 1 : std::min<int64_t>(omp_get_max_threads(), std::max<int64_t>(m / 16, 1));
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int t = 0; t < threads; ++t) {
    const int64_t r0 = m * t / threads, r1 = m * (t + 1) / threads;
    if (r1 <= r0) continue;
    MapMat<T> C(cp + r0 * n, r1 - r0, n);
    auto opb = [&](auto&& lhs) {
      if (beta == T(0)) {
        if (tb) C.noalias() = lhs * B.transpose();
        else C.noalias() = lhs * B;
      } else {
        if (beta != T(1)) C *= beta;
        if (tb) C.noalias() += lhs * B.transpose();
        else C.noalias() += lhs * B;
      }
    };
    if (ta) opb(A.transpose().middleRows(r0, r1 - r0));
    else opb(A.middleRows(r0, r1 - r0));
  }
}

}  // namespace

void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double beta) {
  dispatch_floating(c.dtype(), "gemm", [&](auto tag) {
    using T = decltype(tag);
    gemm_impl<T>(a, trans_a, b, trans_b, c, T(beta));
  });
}

void add_channel_bias(Tensor& y, const Tensor& bias) {
  dispatch_floating(y.dtype(), "add_channel_bias", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = y.size(0), c = y.size(1), plane = n * c != 0 ? y.numel() / (n * c) : 0;
    T* py = y.data<T>();
    const T* pb = bias.data<T>();
#pragma omp parallel for schedule(dynamic, 16) if (y.numel() > kernels::kCpuParallelMin)
    for (int64_t i = 0; i < n * c; ++i) {
      const T b = pb[i % c];
      for (int64_t j = 0; j < plane; ++j) py[i * plane + j] += b;
    }
  });
}

void sum_channels(const Tensor& g, Tensor& gb) {
  dispatch_floating(g.dtype(), "sum_channels", [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = g.size(0), c = g.size(1), plane = n * c != 0 ? g.numel() / (n * c) : 0;
    const T* pg = g.data<T>();
    T* out = gb.data<T>();
    std::fill(out, out + c, T(0));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c; ++k)
        for (int64_t j = 0; j < plane; ++j) out[k] += pg[(i * c + k) * plane + j];
  });
}

}  // namespace mq::cpu
