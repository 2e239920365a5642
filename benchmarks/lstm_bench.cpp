// LSTMFC meta-gradient kernels alone, against this machine's GEMM rate: one meta step over
// ResNet20's 270,896 quantized weights (hidden 100, carried state) is two [n, h] x [h, 4h]
// products, h_prev W_hh^T in the forward and K^T [dm h_prev | ...] for dW_hh in the backward,
// 2 * 2 * n * h * 4h flops (43.3 GFLOP), plus per-element cell math. The same two products
// are timed alone as plain GEMMs (engine's cpu::gemm, Eigen) for the reference rate, and as
// the fused kernels run them (the sgemm kernel per chunk of 256 rows, kernels/meta/lstm_cpu.cpp).
//   lstm_bench [--rows N] [--hidden H] [--threads T] [--repeat R]
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fmt/format.h>

#include "engine/backend.h"
#include "kernels/nn/sgemm_kernel.h"
#include "engine/ops.h"
#include "engine/parallel.h"
#include "meta/meta_op.h"
#include "models/layers.h"

using namespace mq;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed, double lo, double hi) {
  Tensor t = Tensor::empty(shape);
  InitRng(seed).fill_uniform(t, lo, hi);
  return t;
}

template <class F>
double median_seconds(int repeat, F&& f) {
  std::vector<double> t;
  f();  // warm-up
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mq LSTMFC meta-gradient kernels vs the GEMM rate"};
  int64_t rows = 270896, hidden = 100;
  int threads = 2, repeat = 5;
  app.add_option("--rows", rows, "weight elements (rows of the meta net)")->check(CLI::Range(1, 1 << 28));
  app.add_option("--hidden", hidden, "LSTM hidden size")->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--repeat", repeat, "timed repetitions (median)")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  try {
    set_num_threads(threads);
    const int64_t n = rows, h = hidden;
    const double gemm_flops = 2.0 * double(n) * double(h) * double(4 * h);

    // Plain GEMMs of the same shapes.
    Tensor a = random_tensor({n, h}, 1, -1, 1), w = random_tensor({4 * h, h}, 2, -0.1f, 0.1f);
    Tensor r = Tensor::empty({n, 4 * h}), dw = Tensor::empty({4 * h, h});
    const double t_fwd_gemm = median_seconds(repeat, [&] { cpu::gemm(a, false, w, true, r, 0.0); });
    const double t_bwd_gemm = median_seconds(repeat, [&] { cpu::gemm(r, true, a, false, dw, 0.0); });
    const double gemm_rate = 2 * gemm_flops / (t_fwd_gemm + t_bwd_gemm) / 1e9;
#if MQ_HAVE_SGEMM_KERNEL
    // The fused kernels' products alone: per chunk of 256 rows, K = h W_hh^T (W_hh^T row-major)
    // and, in 32 groups, acc_t += B^T K with B = [rows, h + 2] row-major per chunk, read as B^T
    // through strides.
    constexpr int64_t chunk = 256, groups = 32;
    std::vector<float> wt(size_t(4 * h * h), 0.01f), bmat(size_t(n * (h + 2)), 0.5f);
    std::vector<float> acc(size_t(groups * (h + 2) * 4 * h));
    const float* ap = a.data<float>();
    float* rp = r.data<float>();
    const double t_fwd_kernel = median_seconds(repeat, [&] {
#pragma omp parallel for schedule(dynamic)
      for (int64_t r0 = 0; r0 < n; r0 += chunk)
        cpu::sgemm(std::min(chunk, n - r0), 4 * h, h, ap + r0 * h, h, 1, wt.data(), 4 * h,
                   rp + r0 * 4 * h, 4 * h, false);
    });
    const double t_bwd_kernel = median_seconds(repeat, [&] {
#pragma omp parallel for schedule(dynamic)
      for (int64_t g = 0; g < groups; ++g) {
        float* accg = acc.data() + g * (h + 2) * 4 * h;
        std::fill(accg, accg + (h + 2) * 4 * h, 0.f);
        for (int64_t r0 = n * g / groups; r0 < n * (g + 1) / groups; r0 += chunk) {
          const int64_t rows_ = std::min(n * (g + 1) / groups, r0 + chunk) - r0;
          cpu::sgemm(h + 2, 4 * h, rows_, bmat.data() + r0 * (h + 2), 1, h + 2, rp + r0 * 4 * h,
                     4 * h, accg, 4 * h, true);
        }
      }
    });
#endif
    r = Tensor();

    // The LSTMFC op, forward and backward, from a carried state.
    MetaNet net(MetaNetConfig{MetaKind::lstm_fc, h, 3, kernels::MetaAct::none}, 7);
    Tensor g = random_tensor({n}, 3, -1e-3f, 1e-3f), x = random_tensor({n}, 4, -1, 1);
    Tensor dm = random_tensor({n}, 5, -1, 1);
    LstmState state{random_tensor({n, h}, 6, -0.5f, 0.5f), random_tensor({n, h}, 8, -1, 1)};
    const double rss_before = peak_rss_mb();
    // Nothing is held across repetitions, as in training (the heap reuses the freed blocks);
    // the forward and backward run once first so the heap has grown to its working size.
    auto forward_backward = [&] {
      for (Tensor p : net.parameters()) p.zero_grad();
      LstmState next;
      sum(mul(meta_gradient(net, g, x, state, &next), dm)).backward();
    };
    forward_backward();
    const double t_fwd = median_seconds(repeat, [&] {
      LstmState next;
      meta_gradient(net, g, x, state, &next);
    });
    const double t_cell = median_seconds(repeat, [&] { meta_gradient(net, g, x); });
    const double t_both = median_seconds(repeat, forward_backward);
    const double rate = 2 * gemm_flops / t_both / 1e9;

    fmt::print("LSTMFC meta step: {} rows, hidden {}, {} threads, median of {}\n", n, h, threads,
               repeat);
    fmt::print("  GEMM [n,h]x[h,4h]    {:8.1f} ms  {:6.1f} GFLOP/s\n", 1e3 * t_fwd_gemm,
               gemm_flops / t_fwd_gemm / 1e9);
    fmt::print("  GEMM [4h,n]x[n,h]    {:8.1f} ms  {:6.1f} GFLOP/s\n", 1e3 * t_bwd_gemm,
               gemm_flops / t_bwd_gemm / 1e9);
#if MQ_HAVE_SGEMM_KERNEL
    fmt::print("  kernels' GEMMs: forward {:.1f} ms {:.1f} GFLOP/s, backward {:.1f} ms {:.1f} "
               "GFLOP/s (sgemm kernel, chunks of 256 rows)\n",
               1e3 * t_fwd_kernel, gemm_flops / t_fwd_kernel / 1e9, 1e3 * t_bwd_kernel,
               gemm_flops * (h + 2) / h / t_bwd_kernel / 1e9);
#endif
    fmt::print("  LSTMFC forward       {:8.1f} ms (zero state, no GEMM: {:.1f} ms)\n", 1e3 * t_fwd,
               1e3 * t_cell);
    fmt::print("  LSTMFC fwd + bwd     {:8.1f} ms  {:6.1f} GFLOP/s ({:.1f} GFLOP), {:.0f}% of the "
               "GEMM rate {:.1f} GFLOP/s\n",
               1e3 * t_both, rate, 2 * gemm_flops / 1e9, 100 * rate / gemm_rate, gemm_rate);
    fmt::print("  LSTM state (h, c): {:.0f} MB; kept for the backward (K): {:.0f} MB; peak RSS "
               "{:.0f} MB ({:.0f} MB before the LSTM runs)\n",
               2.0 * n * h * 4 / 1048576.0, 4.0 * n * h * 4 / 1048576.0, peak_rss_mb(),
               rss_before);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lstm_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
