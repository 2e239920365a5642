// CPU batch norm over N, H, W per channel for x [N, C, H, W] or [N, C], PyTorch semantics.
// Work is split over channels (OpenMP); the arithmetic and its roundings follow ATen (below).
// Statistics are summed in double (vectorized), the per-element math is in T.
#include <cmath>
#include <type_traits>

#include "kernels/base/float_math.h"

#include "engine/backend.h"
#include "engine/cpu/batch_norm_relu.h"
#include "engine/cpu/bn_eval_affine.h"
#include "engine/dispatch.h"

#if defined(__clang__)  // the same for clang (the sanitizer build), which ignores GCC's pragma
#pragma float_control(push)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

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
// of PyTorch, and BN statistics feed every later step. ATen's per-element kernels
// (cpu/batch_norm_kernel.cpp) are built for AVX2 by GCC, which contracts a product feeding an add
// or subtract into one FMA (Vectorized<float> ops are plain vector arithmetic to GCC); its
// Normalization.cpp (running statistics, invstd) is built without FMA. So this file turns
// contraction off and writes each fused operation ATen gets as an explicit fma_of.

// y = fma(x, scale[c], shift[c]): ATen's data_vec * alpha_vec + beta_vec, which GCC contracts
// into one FMA in the AVX2 kernel.
template <class T>
void apply_affine(const T* x, T* y, const BnGeom& g, const T* scale, const T* shift) {
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const T a = scale[c], b = shift[c];
      const T* in = x + (n * g.c + c) * g.hw;
      T* out = y + (n * g.c + c) * g.hw;
#pragma omp simd
      for (int64_t i = 0; i < g.hw; ++i) out[i] = kernels::fma_of(in[i], a, b);
    }
}

// y = fma(x, scale, shift) normalizes with mean and invstd: scale = invstd * weight and
// shift = bias - mean * scale, fused (ATen's alpha and beta).
template <class T>
void normalizing_affine(T mean, T invstd, T weight, T bias, T& scale, T& shift) {
  scale = invstd * weight;
  shift = kernels::fma_of(-mean, scale, bias);
}

// As ATen: mean = T(sum(x) / N) with the sum in double; var_sum = T(sum((x - mean)^2)) with the
// squares in T and their sum in double; biased var = var_sum / N and unbiased var_sum / (N - 1)
// in T; invstd = 1 / sqrt(var + eps) in double; momentum rounded to T; the running mean update
// in T, the running var update in double from T(1 - momentum) * running_var rounded to T.
// Fills save_mean, save_invstd, the running statistics and the per-channel affine
// y = fma(x, scale, shift) that normalizes the batch.
template <class T>
void train_statistics(const Tensor& xt, const Tensor& wt, const Tensor& bt, Tensor& rmt,
                      Tensor& rvt, double momentum, double eps, Tensor& smt, Tensor& sit,
                      std::vector<T>& scale, std::vector<T>& shift) {
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
  scale.resize(g.c);
  shift.resize(g.c);
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < g.c; ++c) {
    T mean, var_sum;
    if (g.hw == 1) {
      // [N, C] (or H = W = 1) is channels-last contiguous too, and ATen takes its channels-last
      // kernel: sums over N in T (one thread's buffer), the squares fused into the sum.
      T s = 0;
      for (int64_t n = 0; n < g.n; ++n) s += x[n * g.c + c];
      mean = T(double(s) / double(count));
      T ss = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T d = x[n * g.c + c] - mean;
        ss = kernels::fma_of(d, d, ss);
      }
      var_sum = ss;
    } else if constexpr (std::is_same_v<T, double>) {
      // f64: ATen's sums are double too, in order, and GCC fuses the squares into them.
      double s = 0;
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t i = 0; i < g.hw; ++i) s += x[(n * g.c + c) * g.hw + i];
      mean = T(s / double(count));
      double ss = 0;
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t i = 0; i < g.hw; ++i) {
          const T d = x[(n * g.c + c) * g.hw + i] - mean;
          ss = kernels::fma_of(d, d, ss);
        }
      var_sum = T(ss);
    } else {
      double s = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* in = x + (n * g.c + c) * g.hw;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < g.hw; ++i) s += double(in[i]);
      }
      mean = T(s / double(count));
      double ss = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* in = x + (n * g.c + c) * g.hw;
#pragma omp simd reduction(+ : ss)
        for (int64_t i = 0; i < g.hw; ++i) {
          const T d = in[i] - mean;
          ss += double(d * d);
        }
      }
      var_sum = T(ss);
    }
    const T var = var_sum / T(count);
    const T invstd = T(1.0 / std::sqrt(double(var) + eps));
    save_mean[c] = mean;
    save_invstd[c] = invstd;
    rm[c] = mom * mean + (T(1) - mom) * rm[c];
    const double unbiased = double(var_sum / T(count - 1));
    const T kept = (T(1) - mom) * rv[c];
    rv[c] = T(double(mom) * unbiased + double(kept));
    normalizing_affine(mean, invstd, w ? w[c] : T(1), b ? b[c] : T(0), scale[c], shift[c]);
  }
}

template <class T>
void forward_train(const Tensor& xt, const Tensor& wt, const Tensor& bt, Tensor& rmt,
                   Tensor& rvt, double momentum, double eps, Tensor& yt, Tensor& smt,
                   Tensor& sit) {
  std::vector<T> scale, shift;
  train_statistics<T>(xt, wt, bt, rmt, rvt, momentum, eps, smt, sit, scale, shift);
  apply_affine(xt.data<T>(), yt.data<T>(), bn_geom(xt), scale.data(), shift.data());
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
  bn_eval_affine(w, b, rm, rv, eps, g.c, scale.data(), shift.data());
  apply_affine(xt.data<T>(), yt.data<T>(), g, scale.data(), shift.data());
}

// ATen's vec::reduce_all / map2_reduce_all over one (n, c) plane of `size` elements, with
// Vectorized<T> of L lanes (AVX2: 8 floats or 4 doubles): lane-wise accumulation over whole
// vectors, the partial tail vector added into its first lanes, then, for float, a halving tree
// across the lanes (lane i + lane i + L/2, ...), for double the lanes in order. Planes shorter
// than a vector are summed in order. sum(gy) and sum((x - mean) * gy), the latter one FMA per
// element after the first vector.
template <class T>
void plane_sums(const T* gy, const T* x, T m, int64_t size, T& sum_out, T& dot_out) {
  constexpr int L = 32 / int(sizeof(T));
  if (size < L) {
    T s = gy[0], d = (x[0] - m) * gy[0];
    for (int64_t i = 1; i < size; ++i) {
      s += gy[i];
      d += (x[i] - m) * gy[i];
    }
    sum_out = s;
    dot_out = d;
    return;
  }
  T s[L], d[L];
  for (int l = 0; l < L; ++l) {
    s[l] = gy[l];
    d[l] = (x[l] - m) * gy[l];
  }
  int64_t i = L;
  for (; i + L <= size; i += L)
    for (int l = 0; l < L; ++l) {
      s[l] += gy[i + l];
      d[l] = kernels::fma_of(x[i + l] - m, gy[i + l], d[l]);
    }
  for (int l = 0; i + l < size; ++l) {
    s[l] += gy[i + l];
    d[l] = kernels::fma_of(x[i + l] - m, gy[i + l], d[l]);
  }
  if constexpr (std::is_same_v<T, float>) {
    for (int w = L / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) {
        s[l] += s[l + w];
        d[l] += d[l + w];
      }
  } else {  // ATen has the shuffle tree for float only; other types add the lanes in order
    for (int l = 1; l < L; ++l) {
      s[0] += s[l];
      d[0] += d[l];
    }
  }
  sum_out = s[0];
  dot_out = d[0];
}

// Per channel: sum(gy) and sum(gy * (x - mean)), per (n, c) plane in T (plane_sums), planes
// summed in double in n order (as ATen's contiguous kernel; H * W == 1 as its channels-last one).
template <class T>
void channel_sums(const T* gy, const T* x, const T* mean, const BnGeom& g,
                            std::vector<double>& sg, std::vector<double>& sgx) {
  sg.assign(g.c, 0.0);
  sgx.assign(g.c, 0.0);
#pragma omp parallel for schedule(dynamic)
  for (int64_t c = 0; c < g.c; ++c) {
    const T m = mean[c];
    if (g.hw == 1) {  // ATen's channels-last kernel (see forward_train): sums over N in T
      T ta = 0, tb = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        ta += gy[n * g.c + c];
        tb = kernels::fma_of(x[n * g.c + c] - m, gy[n * g.c + c], tb);
      }
      sg[c] = ta;
      sgx[c] = tb;
      continue;
    }
    double a = 0, b = 0;
    for (int64_t n = 0; n < g.n; ++n) {
      const int64_t off = (n * g.c + c) * g.hw;
      T ta, tb;
      plane_sums(gy + off, x + off, m, g.hw, ta, tb);
      a += ta;
      b += tb;
    }
    sg[c] = a;
    sgx[c] = b;
  }
}

// The parts of the training backward that both it and the fused ReLU backward take from the
// channel sums sum(g) and sum(g * (x - mean)): the weight and bias gradients (written where
// defined) and, per channel, k = T(dotp) * invstd * invstd / N and grad_mean = T(sum / N).
template <class T>
struct TrainGradCoefs {
  std::vector<T> k, grad_mean;
};
template <class T>
TrainGradCoefs<T> train_grad_coefs(const std::vector<double>& sg, const std::vector<double>& sgx,
                                   const T* invstd, int64_t count, Tensor& gwt, Tensor& gbt) {
  const size_t c = sg.size();
  if (T* gw = opt_data<T>(gwt))
    for (size_t i = 0; i < c; ++i) gw[i] = T(sgx[i] * double(invstd[i]));
  if (T* gb = opt_data<T>(gbt))
    for (size_t i = 0; i < c; ++i) gb[i] = T(sg[i]);
  TrainGradCoefs<T> r{std::vector<T>(c), std::vector<T>(c)};
  for (size_t i = 0; i < c; ++i) {
    r.k[i] = T(sgx[i]) * invstd[i] * invstd[i] / T(count);
    r.grad_mean[i] = T(sg[i] / double(count));
  }
  return r;
}
// gx = fma(-(x - mean), k, g - grad_mean) * invstd * w.
template <class T>
inline T train_input_grad(T x, T mean, T k, T g, T grad_mean, T invstd, T w) {
  return kernels::fma_of(-(x - mean), k, g - grad_mean) * invstd * w;
}

// As ATen: k = T(dotp) * invstd * invstd / N and grad_mean = T(sum / N), then
// gx = fma(-(x - mean), k, gy - grad_mean) * invstd * w, all in T (ATen's
// (dy - grad_mean - (x - mean) * k) * invstd * w with the subtract of the product fused).
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
  const TrainGradCoefs<T> k = train_grad_coefs<T>(sg, sgx, invstd, g.n * g.hw, gwt, gbt);
  T* gx = opt_data<T>(gxt);
  if (!gx) return;
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t off = (n * g.c + c) * g.hw;
      const T kc = k.k[c], gm = k.grad_mean[c], m = mean[c], is = invstd[c], wc = w ? w[c] : T(1);
#pragma omp simd
      for (int64_t i = 0; i < g.hw; ++i)
        gx[off + i] = train_input_grad(x[off + i], m, kc, gy[off + i], gm, is, wc);
    }
}

template <class T>
void backward_eval(const Tensor& gyt, const Tensor& xt, const Tensor& wt, const Tensor& rmt,
                   const Tensor& rvt, double eps, Tensor& gxt, Tensor& gwt, Tensor& gbt) {
  BnGeom g = bn_geom(xt);
  const T* gy = gyt.data<T>();
  const T* w = opt_data<T>(wt);
  const T* rv = rvt.data<T>();
  std::vector<T> invstd(g.c);
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
  if (T* gx = opt_data<T>(gxt)) {
    // As ATen: gx = dy * invstd * w, multiplied left to right.
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t c = 0; c < g.c; ++c) {
        const int64_t off = (n * g.c + c) * g.hw;
        const T is = invstd[c], wc = w ? w[c] : T(1);
#pragma omp simd
        for (int64_t i = 0; i < g.hw; ++i) gx[off + i] = gy[off + i] * is * wc;
      }
  }
}


// ---- batch norm + (residual add) + ReLU in training, fused (batch_norm_relu in engine/ops.h) ----
// The same roundings as the three separate ops: z = fma(x, scale, shift), then z + residual,
// then z > 0 ? z : 0; the backward's mask z > 0 is recomputed from x (and the residual) with the
// forward's scale and shift, the same bits, so the BN output and the ReLU's are never stored.

// y = relu(fma(x, scale, shift) + r?) per (n, c) plane.
template <class T>
void apply_affine_relu(const T* x, const T* r, T* y, const BnGeom& g, const T* scale,
                       const T* shift) {
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const T a = scale[c], b = shift[c];
      const int64_t off = (n * g.c + c) * g.hw;
      const T* in = x + off;
      T* out = y + off;
      if (r) {
        const T* res = r + off;
#pragma omp simd
        for (int64_t i = 0; i < g.hw; ++i) {
          const T z = kernels::fma_of(in[i], a, b) + res[i];
          out[i] = z > T(0) ? z : T(0);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < g.hw; ++i) {
          const T z = kernels::fma_of(in[i], a, b);
          out[i] = z > T(0) ? z : T(0);
        }
      }
    }
}

// The per-channel affine of the forward, from its saved statistics.
template <class T>
void saved_affine(const T* w, const T* b, const T* mean, const T* invstd, int64_t c,
                  std::vector<T>& scale, std::vector<T>& shift) {
  scale.resize(c);
  shift.resize(c);
  for (int64_t i = 0; i < c; ++i)
    normalizing_affine(mean[i], invstd[i], w ? w[i] : T(1), b ? b[i] : T(0), scale[i], shift[i]);
}

// g1 = the gradient below the ReLU for one plane: gy where fma(x, a, b) + r? > 0, else 0.
template <class T>
void relu_masked(const T* gy, const T* x, const T* r, T a, T b, int64_t size, T* g1) {
  if (r) {
#pragma omp simd
    for (int64_t i = 0; i < size; ++i)
      g1[i] = kernels::fma_of(x[i], a, b) + r[i] > T(0) ? gy[i] : T(0);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) g1[i] = kernels::fma_of(x[i], a, b) > T(0) ? gy[i] : T(0);
  }
}

// As backward_train with gy replaced by the ReLU's (and the add's) gradient g1, recomputed in
// each pass (the sums' pass keeps one plane of it); with a residual, g1 is its gradient too and
// the second pass writes it to gr.
template <class T>
void backward_train_relu(const Tensor& gyt, const Tensor& xt, const Tensor& wt, const Tensor& bt,
                         const Tensor& rt, const Tensor& smt, const Tensor& sit, Tensor& gxt,
                         Tensor& gwt, Tensor& gbt, Tensor& grt) {
  const BnGeom g = bn_geom(xt);
  const T* gy = gyt.data<T>();
  const T* x = xt.data<T>();
  const T* w = opt_data<T>(wt);
  const T* r = opt_data<T>(rt);
  T* gr = opt_data<T>(grt);
  const T* mean = smt.data<T>();
  const T* invstd = sit.data<T>();
  std::vector<T> scale, shift;
  saved_affine(w, opt_data<T>(bt), mean, invstd, g.c, scale, shift);
  std::vector<double> sg(g.c, 0.0), sgx(g.c, 0.0);
#pragma omp parallel
  {
    std::vector<T> plane(g.hw);
#pragma omp for schedule(dynamic)
    for (int64_t c = 0; c < g.c; ++c) {
      double a = 0, b = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const int64_t off = (n * g.c + c) * g.hw;
        T* g1 = plane.data();
        relu_masked(gy + off, x + off, r ? r + off : nullptr, scale[c], shift[c], g.hw, g1);
        T ta, tb;
        plane_sums(g1, x + off, mean[c], g.hw, ta, tb);
        a += ta;
        b += tb;
      }
      sg[c] = a;
      sgx[c] = b;
    }
  }
  const TrainGradCoefs<T> k = train_grad_coefs<T>(sg, sgx, invstd, g.n * g.hw, gwt, gbt);
  T* gx = opt_data<T>(gxt);
  if (!gx) {  // the residual's gradient alone
    if (gr)
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t c = 0; c < g.c; ++c) {
          const int64_t off = (n * g.c + c) * g.hw;
          relu_masked(gy + off, x + off, r + off, scale[c], shift[c], g.hw, gr + off);
        }
    return;
  }
#pragma omp parallel for collapse(2) schedule(dynamic, 16)
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t off = (n * g.c + c) * g.hw;
      const T kc = k.k[c], gm = k.grad_mean[c], m = mean[c], is = invstd[c], wc = w ? w[c] : T(1);
      const T a = scale[c], b = shift[c];
      if (gr) {
#pragma omp simd
        for (int64_t i = 0; i < g.hw; ++i) {
          const T z = kernels::fma_of(x[off + i], a, b) + r[off + i];
          const T g1 = z > T(0) ? gy[off + i] : T(0);
          gr[off + i] = g1;
          gx[off + i] = train_input_grad(x[off + i], m, kc, g1, gm, is, wc);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < g.hw; ++i) {
          const T g1 = kernels::fma_of(x[off + i], a, b) > T(0) ? gy[off + i] : T(0);
          gx[off + i] = train_input_grad(x[off + i], m, kc, g1, gm, is, wc);
        }
      }
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


void batch_norm_relu_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                   Tensor& running_mean, Tensor& running_var, double momentum,
                                   double eps, const Tensor& residual, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd) {
  dispatch_floating(x.dtype(), "batch_norm_relu", [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> scale, shift;
    train_statistics<T>(x, weight, bias, running_mean, running_var, momentum, eps, save_mean,
                        save_invstd, scale, shift);
    apply_affine_relu(x.data<T>(), opt_data<T>(residual), y.data<T>(), bn_geom(x), scale.data(),
                      shift.data());
  });
}

void batch_norm_relu_backward_train(const Tensor& gy, const Tensor& x, const Tensor& weight,
                                    const Tensor& bias, const Tensor& residual,
                                    const Tensor& save_mean, const Tensor& save_invstd,
                                    Tensor& gx, Tensor& gw, Tensor& gb, Tensor& gr) {
  dispatch_floating(x.dtype(), "batch_norm_relu_backward", [&](auto tag) {
    backward_train_relu<decltype(tag)>(gy, x, weight, bias, residual, save_mean, save_invstd, gx,
                                       gw, gb, gr);
  });
}

}  // namespace mq::cpu

#if defined(__clang__)
#pragma float_control(pop)
#else
#pragma GCC pop_options
#endif
