// The f32 CPU conv forward sums every output in the order of PyTorch 1.13's CPU (oneDNN) f32
// convolution, so its rounding matches the golden traces bit for bit: per block of 16 input
// channels one FMA chain over (r, s, c), the block sums added in channel order; a 1x1 conv is one
// chain over c. This test writes that order as plain scalar loops and requires identical bits
// from the kernel on shapes that take each of its paths (padded, unpadded, strided, 1x1, channel
// counts that leave a partial block, outputs wider than one GEMM panel).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <omp.h>

#include "engine/backend.h"
#include "engine/cpu/conv_library.h"
#include "kernels/nn/sgemm_kernel.h"
#include "op_test.h"

using namespace mq;
using namespace mq::test;

namespace {

struct OrderCase {
  int64_t n, c, h, w, k, r, s, stride, pad;
};

// y[n, k, p, q] summed as oneDNN does (see the file comment).
std::vector<float> onednn_order_conv(const std::vector<float>& x, const std::vector<float>& w,
                                     const OrderCase& g, int64_t p, int64_t q) {
  constexpr int64_t kBlock = 16;
  const bool blocked = g.r * g.s > 1;
  const int64_t block = blocked ? kBlock : g.c;
  std::vector<float> y(size_t(g.n * g.k * p * q));
  for (int64_t ni = 0; ni < g.n; ++ni)
    for (int64_t ki = 0; ki < g.k; ++ki)
      for (int64_t pi = 0; pi < p; ++pi)
        for (int64_t qi = 0; qi < q; ++qi) {
          float total = 0.f;
          for (int64_t c0 = 0; c0 < g.c; c0 += block) {
            float acc = 0.f;
            for (int64_t ri = 0; ri < g.r; ++ri)
              for (int64_t si = 0; si < g.s; ++si)
                for (int64_t ci = c0; ci < std::min(g.c, c0 + block); ++ci) {
                  const int64_t ih = pi * g.stride - g.pad + ri, iw = qi * g.stride - g.pad + si;
                  const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
                  const float xv = inside ? x[size_t(((ni * g.c + ci) * g.h + ih) * g.w + iw)] : 0.f;
                  acc = std::fma(w[size_t(((ki * g.c + ci) * g.r + ri) * g.s + si)], xv, acc);
                }
            total = c0 == 0 ? acc : total + acc;
          }
          y[size_t(((ni * g.k + ki) * p + pi) * q + qi)] = total;
        }
  return y;
}


const std::vector<OrderCase> kOrderCases = {
      // n  c   h   w   k  r  s  stride pad
      {2, 3, 32, 32, 16, 3, 3, 1, 1},   // ResNet's first conv
      {2, 16, 16, 16, 16, 3, 3, 1, 1},  // one full channel block
      {2, 20, 9, 11, 7, 3, 3, 1, 1},    // a partial second block, non-square
      {1, 40, 8, 8, 13, 3, 3, 1, 1},    // three blocks, K not a multiple of the micro tile
      {2, 16, 32, 32, 32, 3, 3, 2, 1},  // stride 2 (ResNet's downsampling 3x3)
      {2, 17, 15, 13, 5, 3, 3, 2, 1},   // stride 2, odd sizes, partial block
      {2, 6, 10, 10, 4, 3, 3, 1, 0},    // stride 1 unpadded: x itself as the phase plane
      {1, 5, 12, 12, 3, 5, 5, 1, 2},    // 5x5, pad 2
      {2, 8, 14, 14, 4, 3, 2, 3, 1},    // stride 3, non-square kernel
      {2, 4, 9, 9, 3, 2, 2, 3, 0},      // kernel smaller than the stride
      {2, 24, 8, 8, 10, 1, 1, 1, 0},    // 1x1: x itself, one chain over c
      {2, 24, 8, 8, 10, 1, 1, 2, 0},    // 1x1 stride 2 (ResNet's shortcut)
      {1, 12, 6, 6, 5, 1, 1, 1, 1},     // 1x1 with padding
};

// Every case's conv2d forward against the scalar loops above; `mismatches` per case.
void check_forward_order() {
  for (const auto& g : kOrderCases) {
    Tensor x = randn({g.n, g.c, g.h, g.w}, 41, DType::f32);
    Tensor w = randn({g.k, g.c, g.r, g.s}, 42, DType::f32, 0.2);
    Tensor y = conv2d(x, w, {g.stride, g.pad});
    const int64_t p = y.size(2), q = y.size(3);
    std::vector<float> xs(x.data<float>(), x.data<float>() + x.numel());
    std::vector<float> ws(w.data<float>(), w.data<float>() + w.numel());
    const std::vector<float> want = onednn_order_conv(xs, ws, g, p, q);
    const std::string name = "conv n" + std::to_string(g.n) + " c" + std::to_string(g.c) + " " +
                             std::to_string(g.h) + "x" + std::to_string(g.w) + " k" +
                             std::to_string(g.k) + " " + std::to_string(g.r) + "x" +
                             std::to_string(g.s) + " stride " + std::to_string(g.stride) +
                             " pad " + std::to_string(g.pad);
    INFO(name);
    REQUIRE(y.numel() == static_cast<int64_t>(want.size()));
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < y.numel(); ++i)
      if (std::memcmp(y.data<float>() + i, &want[size_t(i)], sizeof(float)) != 0) {
        if (first < 0) first = i;
        ++mismatches;
      }
    char detail[128] = "";
    if (first >= 0)
      std::snprintf(detail, sizeof detail, "first differing element %lld: got %.9g, want %.9g",
                    static_cast<long long>(first), y.data<float>()[first], want[size_t(first)]);
    INFO(detail);
    CHECK(mismatches == 0);
  }
}

// gx[n, c, h, w] summed as the im2col path does: per tap (ri, si) one FMA chain over k of
// W[k, c, ri, si] gy[n, k, p, q], the taps that reach the element added in (ri, si) order.
std::vector<float> col2im_order_input_grad(const std::vector<float>& gy, const std::vector<float>& w,
                                           const OrderCase& g, int64_t p, int64_t q) {
  std::vector<float> gx(size_t(g.n * g.c * g.h * g.w), 0.f);
  for (int64_t ni = 0; ni < g.n; ++ni)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t ri = 0; ri < g.r; ++ri)
        for (int64_t si = 0; si < g.s; ++si)
          for (int64_t pi = 0; pi < p; ++pi)
            for (int64_t qi = 0; qi < q; ++qi) {
              const int64_t ih = pi * g.stride - g.pad + ri, iw = qi * g.stride - g.pad + si;
              if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
              float acc = 0.f;
              for (int64_t ki = 0; ki < g.k; ++ki)
                acc = std::fma(w[size_t(((ki * g.c + ci) * g.r + ri) * g.s + si)],
                               gy[size_t(((ni * g.k + ki) * p + pi) * q + qi)], acc);
              gx[size_t(((ni * g.c + ci) * g.h + ih) * g.w + iw)] += acc;
            }
  return gx;
}

}  // namespace

// mq's own f32 input gradient (col2im, or shifted views of gy for square kernels at any stride)
// in the im2col path's order on every shape of the forward's cases: the golden traces were
// checked against that order. Zeros compare by value (a tap that falls outside gy adds a
// product of zeros, whose sign is not the col2im path's).
TEST_CASE("conv2d f32 input gradient sums in the im2col path's order, bit for bit", "[nn]") {
#if !MQ_HAVE_SGEMM_KERNEL
  WARN("skipped: built without AVX-512 or AVX2+FMA, the f32 conv runs Eigen's GEMM, which sums in its own order");
  return;
#endif
  // Beside the forward's cases, strided ones whose phase planes reach 16x16 (where the engine
  // reads gy through shifted views): odd sizes, a kernel smaller than the stride (phases no
  // tap reaches), 5x5.
  std::vector<OrderCase> cases = kOrderCases;
  cases.insert(cases.end(), {{2, 6, 33, 35, 5, 3, 3, 2, 1},
                             {1, 4, 50, 49, 3, 2, 2, 3, 0},
                             {1, 5, 32, 32, 4, 5, 5, 2, 2},
                             {1, 3, 40, 40, 70, 3, 3, 2, 0}});
  cpu::set_conv_library(cpu::ConvLibrary::own);
  for (const auto& g : cases) {
    const int64_t p = (g.h + 2 * g.pad - g.r) / g.stride + 1, q = (g.w + 2 * g.pad - g.s) / g.stride + 1;
    Tensor gy = randn({g.n, g.k, p, q}, 43, DType::f32);
    Tensor w = randn({g.k, g.c, g.r, g.s}, 44, DType::f32, 0.2);
    Tensor gx = Tensor::empty({g.n, g.c, g.h, g.w});
    gx.fill_(std::nan(""));  // every element must be written
    cpu::conv2d_backward_input(gy, w, gx, {g.stride, g.pad});
    const std::vector<float> want = col2im_order_input_grad(
        std::vector<float>(gy.data<float>(), gy.data<float>() + gy.numel()),
        std::vector<float>(w.data<float>(), w.data<float>() + w.numel()), g, p, q);
    INFO("c " << g.c << " " << g.h << "x" << g.w << " k " << g.k << " " << g.r << "x" << g.s
              << " stride " << g.stride << " pad " << g.pad);
    int64_t mismatches = 0, first = -1;
    for (int64_t i = 0; i < gx.numel(); ++i) {
      const float got = gx.data<float>()[i], exp = want[size_t(i)];
      const bool same = std::memcmp(&got, &exp, sizeof got) == 0 || (got == 0.f && exp == 0.f);
      if (!same && first < 0) first = i;
      mismatches += same ? 0 : 1;
    }
    INFO("first differing element " << first << ": got " << (first < 0 ? 0.f : gx.data<float>()[first])
                                    << ", want " << (first < 0 ? 0.f : want[size_t(first)]));
    CHECK(mismatches == 0);
  }
  cpu::reset_conv_library();
}

TEST_CASE("conv2d f32 forward sums in oneDNN's order, bit for bit", "[nn]") {
#if !MQ_HAVE_SGEMM_KERNEL
  WARN("skipped: built without AVX-512 or AVX2+FMA, the f32 conv runs Eigen's GEMM, which sums in its own order");
  return;
#endif
  cpu::set_conv_library(cpu::ConvLibrary::own);
  check_forward_order();
  cpu::reset_conv_library();
}

// The same order from oneDNN itself on an AVX-512 machine: what lets the engine hand it the
// forward passes there without changing a bit (conv_library.h).
TEST_CASE("oneDNN's f32 conv forward sums in the order mq's kernel reproduces", "[nn]") {
  if (!cpu::onednn_avx512()) {
    WARN("skipped: " << (cpu::onednn_built() ? "oneDNN runs no AVX-512 kernel here (its AVX2 "
                                                "kernel sums in another order; the engine keeps "
                                                "mq's forward on such machines)"
                                              : "built without oneDNN"));
    return;
  }
  cpu::set_conv_library(cpu::ConvLibrary::onednn);
  check_forward_order();
  cpu::reset_conv_library();
}

// Every f32 conv pass, on whichever library the engine picks, gives the same bits at 1 and 2
// threads (docs/reliability.md: runs do not depend on the thread count).
TEST_CASE("conv2d f32 passes do not depend on the thread count", "[nn]") {
  const std::vector<OrderCase> cases = {
      {64, 3, 32, 32, 16, 3, 3, 1, 1},   // ResNet's first conv
      {64, 16, 32, 32, 16, 3, 3, 1, 1},  // stage 1
      {64, 16, 32, 32, 32, 3, 3, 2, 1},  // downsampling 3x3
      {64, 32, 16, 16, 32, 3, 3, 1, 1},  // stage 2
      {64, 64, 8, 8, 64, 3, 3, 1, 1},    // stage 3
      {64, 32, 16, 16, 64, 1, 1, 2, 0},  // shortcut 1x1
      {8, 16, 16, 16, 16, 3, 3, 1, 1},   // one group of images
  };
  const int saved = omp_get_max_threads();
  for (const auto& g : cases) {
    Tensor x = randn({g.n, g.c, g.h, g.w}, 51, DType::f32);
    Tensor w = randn({g.k, g.c, g.r, g.s}, 52, DType::f32, 0.2);
    Conv2dParams p{g.stride, g.pad};
    std::vector<std::vector<float>> runs[2];
    for (int t = 0; t < 2; ++t) {
      omp_set_num_threads(t + 1);
      Tensor y = Tensor::empty({g.n, g.k, (g.h + 2 * g.pad - g.r) / g.stride + 1,
                                (g.w + 2 * g.pad - g.s) / g.stride + 1});
      cpu::conv2d_forward(x, w, y, p);
      Tensor gy = randn(y.shape(), 53, DType::f32);
      Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape());
      cpu::conv2d_backward_input(gy, w, gx, p);
      cpu::conv2d_backward_weight(gy, x, gw, p);
      // oneDNN's weight gradient sets one thread inside its own parallel region only.
      CHECK(omp_get_max_threads() == t + 1);
      for (const Tensor* r : {&y, &gx, &gw})
        runs[t].emplace_back(r->data<float>(), r->data<float>() + r->numel());
    }
    omp_set_num_threads(saved);
    const char* names[] = {"forward", "input gradient", "weight gradient"};
    for (int i = 0; i < 3; ++i) {
      INFO("c " << g.c << " k " << g.k << " " << g.r << "x" << g.s << " stride " << g.stride
                << ": " << names[i]);
      CHECK(std::memcmp(runs[0][i].data(), runs[1][i].data(), runs[0][i].size() * sizeof(float)) == 0);
    }
  }
}
