// CPU batch norm over N, H, W per channel for x [N, C, H, W] or [N, C], PyTorch semantics.
// Work is split over channels (OpenMP); the arithmetic and its roundings follow ATen (below).
// Statistics are summed in double (vectorized), the per-element math is in T.
#include <cmath>

#include "engine/backend.h"
#include "engine/dispatch.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

namespace mq::cpu {
namespace {

struct BnGeom {
  int64_t n, c, hw;
};
BnGeom bn_geom(const Tensor& x) {
  int64_t hw = 1;
  for (int64_t d = 2; d < x.dim(); ++d) hw *= x.size(d);
  return {x.size(0), x.size(1), hw};
}

template <class T>
const T* opt_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <class T>
T* opt_data(Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// The arithmetic below follows PyTorch's CPU batch norm (ATen batch_norm_kernel.cpp and
// Normalization.cpp) operation by operation, rounding included: the golden traces are f32 runs
// of PyTorch, and BN statistics feed every later step. Products are not fused into FMAs there
// (ATen's Vectorized ops multiply and add separately), hence fp-contract=off for this file.

// y = x * scale[c] + shift[c]
template <class T>
void apply_affine(const T* x, T* y, const BnGeom& g, const T* scale, const T* shift) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const T a = scale[c], b = shift[c];
      const T* in = x + (n * g.c + c) * g.hw;
      T* out = y + (n * g.c + c) * g.hw;
#pragma omp simd
      for (int64_t i = 0; i < g.hw; ++i) out[i] = in[i] * a + b;
    }
}

// As ATen: mean = T(sum(x) / N) with the sum in double; var_sum = T(sum((x - mean)^2)) with the
// squares in T and their sum in double; biased var = var_sum / N and unbiased var_sum / (N - 1)
// in T; invstd = 1 / sqrt(var + eps) in double; momentum rounded to T; the running mean update
// in T, the running var update in double from T(1 - momentum) * running_var rounded to T.
template <class T>
void forward_train(const Tensor& xt, const Tensor& wt, const Tensor& bt, Tensor& rmt,
                             Tensor& rvt, double momentum, double eps, Tensor& yt, Tensor& smt,
                             Tensor& sit) {
  BnGeom g = bn_geom(xt);
  const T* x = xt.data<T>();
  const T* w = opt_data<T>(wt);
  const T* b = opt_data<T>(bt);
  T* rm = rmt.data<T>();
  T* rv = rvt.data<T>();
  T* save_mean = smt.data<T>();
  T* save_invstd = sit.data<T>();
  const int64_t count = g.n * g.hw;
  const T mom = T(momentum);
  std::vector<T> scale(g.c), shift(g.c);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.c; ++c) {
    double s = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* in = x + (n * g.c + c) * g.hw;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < g.hw; ++i) s += double(in[i]);
    }
    const T mean = T(s / double(count));
    double ss = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* in = x + (n * g.c + c) * g.hw;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < g.hw; ++i) {
        const T d = in[i] - mean;
        ss += double(d * d);
      }
    }
    const T var_sum = T(ss);
    const T var = var_sum / T(count);
    const T invstd = T(1.0 / std::sqrt(double(var) + eps));
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    rm[c] = mom * mean + (T(1) - mom) * rm[c];
    const double unbiased = double(var_sum / T(count - 1));
    const T kept = (T(1) - mom) * rv[c];
    rv[c] = T(double(mom) * unbiased + double(kept));
    const T a = invstd * (w ? w[c] : T(1));
    scale[c] = a;
    shift[c] = (b ? b[c] : T(0)) - mean * a;
  }
  apply_affine(x, yt.data<T>(), g, scale.data(), shift.data());
}

template <class T>
void forward_eval(const Tensor& xt, const Tensor& wt, const Tensor& bt, const Tensor& rmt,
                  const Tensor& rvt, double eps, Tensor& yt) {
  BnGeom g = bn_geom(xt);
  const T* w = opt_data<T>(wt);
  const T* b = opt_data<T>(bt);
  const T* rm = rmt.data<T>();
  const T* rv = rvt.data<T>();
  std::vector<T> scale(g.c), shift(g.c);
  for (int64_t c = 0; c < g.c; ++c) {
    const double a = (w ? double(w[c]) : 1.0) / std::sqrt(double(rv[c]) + eps);
    scale[c] = T(a);
    shift[c] = T((b ? double(b[c]) : 0.0) - double(rm[c]) * a);
  }
  apply_affine(xt.data<T>(), yt.data<T>(), g, scale.data(), shift.data());
}

// Per channel: sum(gy) and sum(gy * (x - mean)), per (n, c) plane in T, planes summed in double
// (as ATen's reduce_all / map2_reduce_all per plane).
template <class T>
void channel_sums(const T* gy, const T* x, const T* mean, const BnGeom& g,
                            std::vector<double>& sg, std::vector<double>& sgx) {
  sg.assign(g.c, 0.0);
  sgx.assign(g.c, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.c; ++c) {
    const T m = mean[c];
    double a = 0, b = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const T* pg = gy + (n * g.c + c) * g.hw;
      const T* px = x + (n * g.c + c) * g.hw;
      T ta = 0, tb = 0;
#pragma omp simd reduction(+ : ta, tb)
      for (int64_t i = 0; i < g.hw; ++i) {
        ta += pg[i];
        tb += (px[i] - m) * pg[i];
      }
      a += ta;
      b += tb;
    }
    sg[c] = a;
    sgx[c] = b;
  }
}

// As ATen: k = T(dotp) * invstd * invstd / N and grad_mean = T(sum / N), then
// gx = ((gy - grad_mean) - (x - mean) * k) * invstd * w, all in T.
template <class T>
void backward_train(const Tensor& gyt, const Tensor& xt, const Tensor& wt,
                              const Tensor& smt, const Tensor& sit, Tensor& gxt, Tensor& gwt,
                              Tensor& gbt) {
  BnGeom g = bn_geom(xt);
  const T* gy = gyt.data<T>();
  const T* x = xt.data<T>();
  const T* w = opt_data<T>(wt);
  const T* mean = smt.data<T>();
  const T* invstd = sit.data<T>();
  std::vector<double> sg, sgx;
  channel_sums(gy, x, mean, g, sg, sgx);
  const int64_t count = g.n * g.hw;
  if (T* gw = opt_data<T>(gwt))
    for (int64_t c = 0; c < g.c; ++c) gw[c] = T(sgx[c] * double(invstd[c]));
  if (T* gb = opt_data<T>(gbt))
    for (int64_t c = 0; c < g.c; ++c) gb[c] = T(sg[c]);
  T* gx = opt_data<T>(gxt);
  if (!gx) return;
  std::vector<T> ck(g.c), cm(g.c);
  for (int64_t c = 0; c < g.c; ++c) {
    ck[c] = T(sgx[c]) * invstd[c] * invstd[c] / T(count);
    cm[c] = T(sg[c] / double(count));
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t off = (n * g.c + c) * g.hw;
      const T k = ck[c], gm = cm[c], m = mean[c], is = invstd[c], wc = w ? w[c] : T(1);
#pragma omp simd
      for (int64_t i = 0; i < g.hw; ++i)
        gx[off + i] = ((gy[off + i] - gm) - (x[off + i] - m) * k) * is * wc;
    }
}

template <class T>
void backward_eval(const Tensor& gyt, const Tensor& xt, const Tensor& wt, const Tensor& rmt,
                   const Tensor& rvt, double eps, Tensor& gxt, Tensor& gwt, Tensor& gbt) {
  BnGeom g = bn_geom(xt);
  const T* gy = gyt.data<T>();
  const T* w = opt_data<T>(wt);
  const T* rv = rvt.data<T>();
  std::vector<T> invstd(g.c), zero(g.c, T(0));
  for (int64_t c = 0; c < g.c; ++c) invstd[c] = T(1.0 / std::sqrt(double(rv[c]) + eps));
  T* gw = opt_data<T>(gwt);
  T* gb = opt_data<T>(gbt);
  if (gw || gb) {
    std::vector<double> sg, sgx;
    channel_sums(gy, xt.data<T>(), rmt.data<T>(), g, sg, sgx);
    for (int64_t c = 0; c < g.c; ++c) {
      if (gw) gw[c] = T(sgx[c] * double(invstd[c]));
      if (gb) gb[c] = T(sg[c]);
    }
  }
  if (gxt.defined()) {
    std::vector<T> scale(g.c);
    for (int64_t c = 0; c < g.c; ++c) scale[c] = (w ? w[c] : T(1)) * invstd[c];
    apply_affine(gy, gxt.data<T>(), g, scale.data(), zero.data());
  }
}

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              Tensor& running_mean, Tensor& running_var, double momentum,
                              double eps, Tensor& y, Tensor& save_mean, Tensor& save_invstd) {
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    forward_train<decltype(tag)>(x, weight, bias, running_mean, running_var, momentum, eps, y,
                                 save_mean, save_invstd);
  });
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             const Tensor& running_mean, const Tensor& running_var, double eps,
                             Tensor& y) {
  dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
    forward_eval<decltype(tag)>(x, weight, bias, running_mean, running_var, eps, y);
  });
}

void batch_norm_backward_train(const Tensor& gy, const Tensor& x, const Tensor& weight,
                               const Tensor& save_mean, const Tensor& save_invstd, Tensor& gx,
                               Tensor& gw, Tensor& gb) {
  dispatch_floating(x.dtype(), "batch_norm_backward", [&](auto tag) {
    backward_train<decltype(tag)>(gy, x, weight, save_mean, save_invstd, gx, gw, gb);
  });
}

void batch_norm_backward_eval(const Tensor& gy, const Tensor& x, const Tensor& weight,
                              const Tensor& running_mean, const Tensor& running_var, double eps,
                              Tensor& gx, Tensor& gw, Tensor& gb) {
  dispatch_floating(x.dtype(), "batch_norm_backward", [&](auto tag) {
    backward_eval<decltype(tag)>(gy, x, weight, running_mean, running_var, eps, gx, gw, gb);
  });
}

}  // namespace mq::cpu

#pragma GCC pop_options
