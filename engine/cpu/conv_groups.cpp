#include "engine/cpu/conv_groups.h"

#include <algorithm>

#include "engine/backend.h"
#include "engine/cpu/conv_depthwise.h"
#include "engine/dispatch.h"

namespace mq::cpu {
namespace {

// Channels [c0, c0 + count) of every image of t [N, C, ...] copied into a new [N, count, ...]
// tensor (to_slice) or back from it (from_slice).
Tensor channel_slice(const Tensor& t, int64_t c0, int64_t count) {
  Shape shape = t.shape();
  const int64_t n = shape[0], c = shape[1], plane = t.numel() / std::max<int64_t>(n * c, 1);
  shape[1] = count;
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  dispatch_floating(t.dtype(), "conv2d (groups)", [&](auto tag) {
    using T = decltype(tag);
    const T* src = t.data<T>();
    T* dst = out.data<T>();
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(src + (i * c + c0) * plane, count * plane, dst + i * count * plane);
  });
  return out;
}

void put_channel_slice(const Tensor& slice, Tensor& t, int64_t c0) {
  const int64_t n = t.size(0), c = t.size(1), count = slice.size(1);
  const int64_t plane = t.numel() / std::max<int64_t>(n * c, 1);
  dispatch_floating(t.dtype(), "conv2d (groups)", [&](auto tag) {
    using T = decltype(tag);
    const T* src = slice.data<T>();
    T* dst = t.data<T>();
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(src + i * count * plane, count * plane, dst + (i * c + c0) * plane);
  });
}

// Rows [k0, k0 + count) of w [K, ...] (a group's filters: contiguous), copied out or back.
Tensor rows_slice(const Tensor& w, int64_t k0, int64_t count) {
  Shape shape = w.shape();
  const int64_t row = w.numel() / std::max<int64_t>(shape[0], 1);
  shape[0] = count;
  Tensor out = Tensor::empty(shape, w.dtype(), w.device());
  dispatch_floating(w.dtype(), "conv2d (groups)", [&](auto tag) {
    using T = decltype(tag);
    std::copy_n(w.data<T>() + k0 * row, count * row, out.data<T>());
  });
  return out;
}

void put_rows_slice(const Tensor& slice, Tensor& w, int64_t k0) {
  const int64_t row = w.numel() / std::max<int64_t>(w.size(0), 1);
  dispatch_floating(w.dtype(), "conv2d (groups)", [&](auto tag) {
    using T = decltype(tag);
    std::copy_n(slice.data<T>(), slice.numel(), w.data<T>() + k0 * row);
  });
}

Conv2dParams ungrouped(Conv2dParams p) {
  p.groups = 1;
  return p;
}

}  // namespace

void conv2d_grouped_forward(const Tensor& x, const Tensor& w, Tensor& y, Conv2dParams p) {
  if (is_depthwise(x, w, p)) return conv2d_depthwise_forward(x, w, y, p);
  const int64_t cg = x.size(1) / p.groups, kg = w.size(0) / p.groups;
  for (int64_t g = 0; g < p.groups; ++g) {
    Tensor yg = Tensor::empty({y.size(0), kg, y.size(2), y.size(3)}, y.dtype(), y.device());
    conv2d_forward(channel_slice(x, g * cg, cg), rows_slice(w, g * kg, kg), yg,
                   ungrouped(p));
    put_channel_slice(yg, y, g * kg);
  }
}

void conv2d_grouped_backward_input(const Tensor& gy, const Tensor& w, Tensor& gx, Conv2dParams p) {
  if (is_depthwise(gx, w, p)) return conv2d_depthwise_backward_input(gy, w, gx, p);
  const int64_t cg = gx.size(1) / p.groups, kg = w.size(0) / p.groups;
  for (int64_t g = 0; g < p.groups; ++g) {
    Tensor gxg = Tensor::empty({gx.size(0), cg, gx.size(2), gx.size(3)}, gx.dtype(), gx.device());
    conv2d_backward_input(channel_slice(gy, g * kg, kg), rows_slice(w, g * kg, kg), gxg,
                          ungrouped(p));
    put_channel_slice(gxg, gx, g * cg);
  }
}

void conv2d_grouped_backward_weight(const Tensor& gy, const Tensor& x, Tensor& gw,
                                    Conv2dParams p) {
  if (is_depthwise(x, gw, p)) return conv2d_depthwise_backward_weight(gy, x, gw, p);
  const int64_t cg = x.size(1) / p.groups, kg = gw.size(0) / p.groups;
  for (int64_t g = 0; g < p.groups; ++g) {
    Tensor gwg = Tensor::empty({kg, cg, gw.size(2), gw.size(3)}, gw.dtype(), gw.device());
    conv2d_backward_weight(channel_slice(gy, g * kg, kg), channel_slice(x, g * cg, cg), gwg,
                           ungrouped(p));
    put_rows_slice(gwg, gw, g * kg);
  }
}

}  // namespace mq::cpu
