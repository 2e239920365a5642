#include "engine/cpu/conv_depthwise.h"

#include <algorithm>

#include "engine/dispatch.h"

namespace mq::cpu {
namespace {

struct Plane {
  int64_t h, w, p, q, r, s, stride, pad;
  // The outputs ow whose input column ow * stride - pad + kw lies inside [0, w).
  int64_t ow_lo(int64_t kw) const {
    const int64_t need = pad - kw;  // ow * stride >= need
    return need <= 0 ? 0 : (need + stride - 1) / stride;
  }
  int64_t ow_hi(int64_t kw) const {  // exclusive
    const int64_t last = w - 1 + pad - kw;  // ow * stride <= last
    return last < 0 ? 0 : std::min(q, last / stride + 1);
  }
};

Plane plane_of(const Tensor& x, const Tensor& w, const Tensor& y, Conv2dParams p) {
  return {x.size(2), x.size(3), y.size(2), y.size(3), w.size(2), w.size(3), p.stride, p.padding};
}

// y_plane += conv(x_plane, filter): for each output row, each tap, a strided row of inputs.
template <class T>
void forward_plane(const T* x, const T* f, T* y, const Plane& g) {
  std::fill_n(y, g.p * g.q, T(0));
  for (int64_t oh = 0; oh < g.p; ++oh)
    for (int64_t kh = 0; kh < g.r; ++kh) {
      const int64_t ih = oh * g.stride - g.pad + kh;
      if (ih < 0 || ih >= g.h) continue;
      const T* xr = x + ih * g.w;
      T* yr = y + oh * g.q;
      for (int64_t kw = 0; kw < g.s; ++kw) {
        const T fv = f[kh * g.s + kw];
        const int64_t lo = g.ow_lo(kw), hi = g.ow_hi(kw), off = kw - g.pad;
        for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += fv * xr[ow * g.stride + off];
      }
    }
}

template <class T>
void backward_input_plane(const T* gy, const T* f, T* gx, const Plane& g) {
  std::fill_n(gx, g.h * g.w, T(0));
  for (int64_t oh = 0; oh < g.p; ++oh)
    for (int64_t kh = 0; kh < g.r; ++kh) {
      const int64_t ih = oh * g.stride - g.pad + kh;
      if (ih < 0 || ih >= g.h) continue;
      T* gxr = gx + ih * g.w;
      const T* gyr = gy + oh * g.q;
      for (int64_t kw = 0; kw < g.s; ++kw) {
        const T fv = f[kh * g.s + kw];
        const int64_t lo = g.ow_lo(kw), hi = g.ow_hi(kw), off = kw - g.pad;
        for (int64_t ow = lo; ow < hi; ++ow) gxr[ow * g.stride + off] += fv * gyr[ow];
      }
    }
}

// gf[tap] += sum over the plane of gy * the tap's shifted inputs.
template <class T>
void backward_weight_plane(const T* gy, const T* x, T* gf, const Plane& g) {
  for (int64_t kh = 0; kh < g.r; ++kh)
    for (int64_t kw = 0; kw < g.s; ++kw) {
      const int64_t lo = g.ow_lo(kw), hi = g.ow_hi(kw), off = kw - g.pad;
      T acc = 0;
      for (int64_t oh = 0; oh < g.p; ++oh) {
        const int64_t ih = oh * g.stride - g.pad + kh;
        if (ih < 0 || ih >= g.h) continue;
        const T* xr = x + ih * g.w;
        const T* gyr = gy + oh * g.q;
        for (int64_t ow = lo; ow < hi; ++ow) acc += gyr[ow] * xr[ow * g.stride + off];
      }
      gf[kh * g.s + kw] += acc;
    }
}

}  // namespace

bool is_depthwise(const Tensor& x, const Tensor& w, Conv2dParams p) {
  return p.groups > 1 && x.size(1) == p.groups && w.size(0) == p.groups && w.size(1) == 1;
}

// body(i, c) for every plane i = image * c + channel; planes are handed to the threads in chunks
// as they come free.
template <class Body>
void each_plane(int64_t n, int64_t c, Body&& body) {
#pragma omp parallel for schedule(dynamic, 16) if (n * c > 16)
  for (int64_t i = 0; i < n * c; ++i) body(i, i % c);
}

void conv2d_depthwise_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p) {
  const Plane g = plane_of(x, w, y, p);
  dispatch_floating(x.dtype(), "conv2d (depthwise)", [&](auto tag) {
    using T = decltype(tag);
    const T *xp = x.data<T>(), *wp = w.data<T>();
    T* yp = y.data<T>();
    each_plane(x.size(0), x.size(1), [&](int64_t i, int64_t ch) {
      forward_plane(xp + i * g.h * g.w, wp + ch * g.r * g.s, yp + i * g.p * g.q, g);
    });
  });
}

void conv2d_depthwise_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx,
                                     Conv2dParams p) {
  const Plane g = plane_of(gx, w, gy, p);
  dispatch_floating(gy.dtype(), "conv2d_backward_input (depthwise)", [&](auto tag) {
    using T = decltype(tag);
    const T *gyp = gy.data<T>(), *wp = w.data<T>();
    T* gxp = gx.data<T>();
    each_plane(gx.size(0), gx.size(1), [&](int64_t i, int64_t ch) {
      backward_input_plane(gyp + i * g.p * g.q, wp + ch * g.r * g.s, gxp + i * g.h * g.w, g);
    });
  });
}

void conv2d_depthwise_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                                      Conv2dParams p) {
  const Plane g = plane_of(x, gw, gy, p);
  const int64_t n = x.size(0), c = x.size(1), rs = g.r * g.s;
  dispatch_floating(gy.dtype(), "conv2d_backward_weight (depthwise)", [&](auto tag) {
    using T = decltype(tag);
    const T *gyp = gy.data<T>(), *xp = x.data<T>();
    T* gwp = gw.data<T>();
    // One channel per task, its images in order.
#pragma omp parallel for schedule(dynamic, 4) if (c > 4)
    for (int64_t ch = 0; ch < c; ++ch) {
      T* gf = gwp + ch * rs;
      std::fill_n(gf, rs, T(0));
      for (int64_t img = 0; img < n; ++img) {
        const int64_t i = img * c + ch;
        backward_weight_plane(gyp + i * g.p * g.q, xp + i * g.h * g.w, gf, g);
      }
    }
  });
}

}  // namespace mq::cpu
