// The roofline of one ResNet20 training step on this CPU: the machine's limits measured first
// (the sgemm peak through mq's own GEMM and, for reference, OpenBLAS with its best kernel for
// this core and with the kernel the environment forces, each naming the kernel it ran; the
// copy bandwidth), then every pass of a step at batch 128 timed alone with its arithmetic, as
// GFLOP/s against the peak (convolutions, meta GEMMs) or GB/s against the copy bandwidth (batch
// norm, ReLU, the quantizer). The passes' sum is a step without the framework around it. Every
// conv pass is timed on mq's own kernel and on oneDNN; its "ms" is the one the engine runs.
//   roofline [--threads 2] [--reps 5] [--batch 128] [--gemm 2048]
// OpenBLAS (Debian's libopenblas0) is loaded at run time in a child process, once with
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as the environment sets them and once without them;
// without the library those lines say so.
#include <dlfcn.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "benchmarks/harness/child_process.h"
#include "engine/backend.h"
#include "engine/cpu/batch_norm_relu.h"
#include "engine/cpu/conv_library.h"
#include "engine/ops.h"
#include "engine/parallel.h"
#include "meta/meta_op.h"
#include "models/layers.h"
#include "models/quantize_op.h"

using namespace mq;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed, double lo = -1, double hi = 1) {
  Tensor t = Tensor::empty(shape);
  InitRng(seed).fill_uniform(t, lo, hi);
  return t;
}

// Best of `reps` after a warm-up (the least disturbed run on a shared machine), in seconds.
template <class F>
double best_s(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// ---- OpenBLAS in a child process (its environment decides its kernel at load time) ----
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
int openblas_child(int n, int threads, int reps) {
  void* lib = nullptr;
  for (const char* name : {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"})
    if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
  if (!lib) {
    fmt::print("not installed (Debian: libopenblas0)\n");
    return 0;
  }
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
  auto corename = reinterpret_cast<char* (*)()>(dlsym(lib, "openblas_get_corename"));
  auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
  if (!sgemm) {
    fmt::print("no cblas_sgemm in the library\n");
    return 0;
  }
  if (set_threads) set_threads(threads);
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  constexpr int kRowMajor = 101, kNoTrans = 111;
  const double s = best_s(reps, [&] {
    sgemm(kRowMajor, kNoTrans, kNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  });
  fmt::print("{:7.1f} GFLOP/s, kernel {}\n", 2.0 * n * n * n / s / 1e9,
             corename ? corename() : "(unknown)");
  return 0;
}

// Runs this program as the OpenBLAS child; `clean` drops the two variables that force a kernel.
std::string openblas_rate(const char* self, int n, int threads, int reps, bool clean) {
  std::string out = bench::run_self(self,
                                    {"--openblas-child", "--gemm", std::to_string(n), "--threads",
                                     std::to_string(threads), "--reps", std::to_string(reps)},
                                    clean);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.empty() ? "failed" : out;
}

// ---- the passes of a ResNet20 step ----
struct ConvShape {
  const char* name;
  int64_t c, h, k, r, stride, pad;
  int count;  // convs of this shape in ResNet20
};
const ConvShape kConvs[] = {
    {"conv1 3->16 32x32", 3, 32, 16, 3, 1, 1, 1},
    {"16->16 32x32", 16, 32, 16, 3, 1, 1, 6},
    {"16->32 s2 32x32", 16, 32, 32, 3, 2, 1, 1},
    {"32->32 16x16", 32, 16, 32, 3, 1, 1, 5},
    {"32->64 s2 16x16", 32, 16, 64, 3, 2, 1, 1},
    {"64->64 8x8", 64, 8, 64, 3, 1, 1, 5},
    {"ds 16->32 1x1 s2", 16, 32, 32, 1, 2, 0, 1},
    {"ds 32->64 1x1 s2", 32, 16, 64, 1, 2, 0, 1},
};
// Batch norm and ReLU run on these activations ([C, H] at batch N): 7 BN of 16x32x32 (conv1 and
// six in stage 1), 7 of 32x16x16 (six and the shortcut's), 7 of 64x8x8; ReLU on 7, 6, 6.
// ResNet20's batch norms per activation shape in training: alone (the downsample's), with a
// ReLU (the stem's and each block's first) and with the residual add and a ReLU (each block's
// second), the last two one batch_norm_relu each.
struct ActShape {
  int64_t c, h;
  int bn, bn_relu, bn_add_relu;
};
const ActShape kActs[] = {{16, 32, 0, 4, 3}, {32, 16, 1, 3, 3}, {64, 8, 1, 3, 3}};

struct Row {
  std::string pass;
  int count;
  double ms;        // all `count` occurrences, as the engine runs them
  double work;      // GFLOP or GB (all occurrences)
  bool flops;       // work is GFLOP (else GB moved)
  // Conv passes: all occurrences on mq's own kernel and on oneDNN (< 0: not measured), and
  // which of the two the engine runs.
  double own_ms = -1, onednn_ms = -1;
  const char* used = "";
};

// A conv pass timed on each library and as the engine picks (conv_library.h).
Row conv_row(const std::string& pass, const ConvShape& s, cpu::ConvPass kind, double flop,
             int reps, const std::function<void()>& run) {
  Row row{pass, s.count, 0, flop, true};
  cpu::set_conv_library(cpu::ConvLibrary::own);
  row.own_ms = 1e3 * s.count * best_s(reps, run);
  if (cpu::onednn_built()) {
    cpu::set_conv_library(cpu::ConvLibrary::onednn);
    row.onednn_ms = 1e3 * s.count * best_s(reps, run);
  }
  cpu::reset_conv_library();
  const auto lib = cpu::conv_library(kind, s.c, s.k, s.r, s.r, {s.stride, s.pad});
  row.used = cpu::conv_library_name(lib);
  row.ms = lib == cpu::ConvLibrary::onednn ? row.onednn_ms : row.own_ms;
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"roofline of a ResNet20 training step on this CPU"};
  int threads = 2, reps = 5, gemm = 2048;
  int64_t batch = 128, hidden = 100;
  bool child = false;
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--reps", reps, "timed repetitions (best reported)")->check(CLI::Range(1, 1000));
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 4096));
  app.add_option("--gemm", gemm, "n of the n x n x n peak GEMM")->check(CLI::Range(64, 8192));
  app.add_option("--hidden", hidden, "LSTMFC hidden size")->check(CLI::Range(1, 4096));
  app.add_flag("--openblas-child", child, "(internal) time OpenBLAS in this process");
  CLI11_PARSE(app, argc, argv);
  if (child) return openblas_child(gemm, threads, reps);
  try {
    set_num_threads(threads);
    fmt::print("roofline: ResNet20 training step, batch {}, {} threads, best of {}\n\n", batch,
               threads, reps);
    // ---- limits ----
    const int64_t n = gemm;
    Tensor a = random_tensor({n, n}, 1), b = random_tensor({n, n}, 2), c = Tensor::empty({n, n});
    const double peak_s = best_s(reps, [&] { cpu::gemm(a, false, b, false, c, 0.0); });
    const double mq_peak = 2.0 * double(n) * n * n / peak_s / 1e9;
    a = b = c = Tensor();
    fmt::print("sgemm {0}x{0}x{0}, mq (cpu::gemm):              {1:7.1f} GFLOP/s\n", n, mq_peak);
    const char* forced = std::getenv("OPENBLAS_CORETYPE");
    fmt::print("sgemm, OpenBLAS, environment as set ({}): {}\n", forced ? forced : "none",
               openblas_rate(argv[0], gemm, threads, reps, false));
    const std::string best = openblas_rate(argv[0], gemm, threads, reps, true);
    fmt::print("sgemm, OpenBLAS, its own choice of kernel:    {}\n", best);
    // The machine's peak: the faster of the two (OpenBLAS's rate leads its line when it ran).
    double peak = mq_peak;
    try {
      peak = std::max(peak, std::stod(best));
    } catch (const std::exception&) {
    }
    fmt::print("peak used below: {:.1f} GFLOP/s\n", peak);
    // Copy bandwidth (read + write) far beyond the caches, and at the size of the step's
    // largest activation (batch x 16 x 32 x 32 floats: 8 MB at batch 128), which is the limit
    // of the memory-bound passes below: their tensors are at most that big.
    auto copy_rate = [&](int64_t words) {
      Tensor src = random_tensor({words}, 3), dst = Tensor::empty({words});
      const float* from = src.data<float>();
      float* to = dst.data<float>();
      const int64_t pieces = 64, piece = (words + pieces - 1) / pieces;
      // On all threads, as the passes run.
      auto copy = [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t p = 0; p < pieces; ++p) {
          const int64_t a = p * piece, b = std::min(words, a + piece);
          if (b > a) std::memcpy(to + a, from + a, size_t(b - a) * sizeof(float));
        }
      };
      return 2.0 * double(words) * 4 / best_s(reps, copy) / 1e9;
    };
    const double dram_gbs = copy_rate(int64_t(32) << 20);
    const double copy_gbs = copy_rate(batch * 16 * 32 * 32);
    fmt::print("copy 128 MB (all threads, read + write):     {:7.1f} GB/s\n", dram_gbs);
    fmt::print("copy {:.0f} MB, the largest activation:           {:7.1f} GB/s (the limit of the "
               "memory-bound passes)\n\n", double(batch * 16 * 32 * 32) * 4 / 1048576.0, copy_gbs);

    // ---- passes ----
    std::vector<Row> rows;
    struct Fusion {
      std::string what;
      int count;
      double fused_ms, separate_ms;  // forward + backward through autograd, all occurrences
    };
    std::vector<Fusion> fusion;
    for (const ConvShape& s : kConvs) {
      Conv2dParams p{s.stride, s.pad};
      const int64_t o = (s.h + 2 * s.pad - s.r) / s.stride + 1;
      Tensor x = random_tensor({batch, s.c, s.h, s.h}, 4), w = random_tensor({s.k, s.c, s.r, s.r}, 5);
      Tensor y = Tensor::empty({batch, s.k, o, o}), gy = random_tensor(y.shape(), 6);
      Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape());
      const double flop = 2.0 * batch * s.k * o * o * s.c * s.r * s.r / 1e9 * s.count;
      rows.push_back(conv_row(fmt::format("conv fwd    {}", s.name), s, cpu::ConvPass::forward,
                              flop, reps, [&] { cpu::conv2d_forward(x, w, y, p); }));
      if (s.c > 3)  // the first conv's input gradient is not needed (the input is data)
        rows.push_back(conv_row(fmt::format("conv bwd-in {}", s.name), s,
                                cpu::ConvPass::backward_input, flop, reps,
                                [&] { cpu::conv2d_backward_input(gy, w, gx, p); }));
      rows.push_back(conv_row(fmt::format("conv bwd-w  {}", s.name), s,
                              cpu::ConvPass::backward_weight, flop, reps,
                              [&] { cpu::conv2d_backward_weight(gy, x, gw, p); }));
    }
    for (const ActShape& s : kActs) {
      Tensor x = random_tensor({batch, s.c, s.h, s.h}, 7), gy = random_tensor(x.shape(), 8);
      Tensor res = random_tensor(x.shape(), 13);
      Tensor wt = random_tensor({s.c}, 9, 0.5, 1.5), bs = random_tensor({s.c}, 10);
      Tensor rm = Tensor::zeros({s.c}), rv = Tensor::full({s.c}, 1.0), y = Tensor::empty(x.shape());
      Tensor sm = Tensor::empty({s.c}), si = Tensor::empty({s.c});
      Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty({s.c}), gb = Tensor::empty({s.c});
      Tensor gr = Tensor::empty(x.shape());
      const double gb_act = double(x.numel()) * 4 / 1e9;  // one pass over the activation
      const std::string shape = fmt::format("{}x{}x{}", s.c, s.h, s.h);
      // Passes over activations at the least: batch norm's forward reads x and writes y, its
      // backward reads gy and x and writes gx; a residual adds a read each way and the
      // backward's write of its gradient.
      if (s.bn > 0) {
        rows.push_back({"bn fwd      " + shape, s.bn,
                        1e3 * s.bn * best_s(reps, [&] {
                          cpu::batch_norm_forward_train(x, wt, bs, rm, rv, 0.1, 1e-5, y, sm, si);
                        }),
                        2 * gb_act * s.bn, false});
        rows.push_back({"bn bwd      " + shape, s.bn,
                        1e3 * s.bn * best_s(reps, [&] {
                          cpu::batch_norm_backward_train(gy, x, wt, sm, si, gx, gw, gb);
                        }),
                        3 * gb_act * s.bn, false});
      }
      for (const bool with_res : {false, true}) {
        const int count = with_res ? s.bn_add_relu : s.bn_relu;
        const Tensor r = with_res ? res : Tensor();
        const std::string name = with_res ? "bn+add+relu" : "bn+relu    ";
        rows.push_back({name + " fwd " + shape, count,
                        1e3 * count * best_s(reps, [&] {
                          cpu::batch_norm_relu_forward_train(x, wt, bs, rm, rv, 0.1, 1e-5, r, y,
                                                             sm, si);
                        }),
                        (with_res ? 3 : 2) * gb_act * count, false});
        Tensor g_res = with_res ? gr : Tensor();
        rows.push_back({name + " bwd " + shape, count,
                        1e3 * count * best_s(reps, [&] {
                          cpu::batch_norm_relu_backward_train(gy, x, wt, bs, r, sm, si, gx, gw, gb,
                                                              g_res);
                        }),
                        (with_res ? 5 : 3) * gb_act * count, false});
        // The same through autograd, fused and as separate ops (batch_norm, add, relu), forward
        // and backward: what fusing saves inside a step.
        auto step = [&](bool fused) {
          Tensor xg = x.detach().set_requires_grad();
          Tensor out;
          if (fused) {
            out = batch_norm_relu(xg, wt, bs, rm, rv, {true, 0.1, 1e-5}, r);
          } else {
            Tensor z = batch_norm(xg, wt, bs, rm, rv, {true, 0.1, 1e-5});
            out = relu(with_res ? add(z, r) : z);
          }
          out.backward(gy);
        };
        fusion.push_back({name + " " + shape, count, 1e3 * count * best_s(reps, [&] { step(true); }),
                          1e3 * count * best_s(reps, [&] { step(false); })});
      }
    }
    {
      // The quantizer over ResNet20's 270,896 quantized weights (one call for all: per layer
      // the same bytes in 20 calls).
      const int64_t weights = 270896;
      Tensor W = random_tensor({weights}, 11, -0.1, 0.1), g = random_tensor({weights}, 12);
      const double gb = double(weights) * 4 / 1e9;
      rows.push_back({"quantize fwd dorefa 1 bit (all weights)", 1,
                      1e3 * best_s(reps, [&] { quantize(W, {Quantizer::dorefa, 1}); }), 3 * gb, false});
      Tensor scale = quantize(W, {Quantizer::dorefa, 1}).scale;
      rows.push_back({"quantize bwd (STE)", 1,
                      1e3 * best_s(reps, [&] { quantize_backward(W, g, scale, {Quantizer::dorefa, 1}); }),
                      3 * gb, false});
      // The meta networks over all rows, forward + backward.
      for (MetaKind kind : {MetaKind::multi_fc, MetaKind::fc_grad, MetaKind::lstm_fc}) {
        MetaNet net(MetaNetConfig{kind, hidden, 3, kernels::MetaAct::none}, 13);
        Tensor gh = random_tensor({weights}, 14, -1e-3, 1e-3), xt = random_tensor({weights}, 15);
        LstmState state;
        if (kind == MetaKind::lstm_fc)
          state = {random_tensor({weights, hidden}, 16, -0.5, 0.5),
                   random_tensor({weights, hidden}, 17)};
        Tensor dm = random_tensor({weights}, 18);
        const double s = best_s(reps, [&] {
          for (Tensor p : net.parameters()) p.zero_grad();
          LstmState next;
          sum(mul(meta_gradient(net, gh, xt, state, &next), dm)).backward();
        });
        // LSTMFC: the two [n, h] x [h, 4h] products of lstm_bench; the collapsed linear nets
        // read g_W^, W~ and write G: memory-bound.
        const bool lstm = kind == MetaKind::lstm_fc;
        const double work = lstm ? 2 * 2.0 * weights * hidden * 4 * hidden / 1e9 : 5 * gb;
        rows.push_back({fmt::format("meta {} fwd + bwd (all weights)", meta_kind_str(kind)), 1,
                        1e3 * s, work, lstm});
      }
    }

    // ---- report ----
    fmt::print("{:<44} {:>5} {:>9} {:>9} {:>10} {:>8}   {}\n", "pass", "count", "ms", "work",
               "rate", "of limit", "convs: ms on mq's kernel / oneDNN, the one used");
    double total = 0, conv = 0;
    for (const Row& r : rows) {
      const double rate = r.work / (r.ms / 1e3);
      const double limit = r.flops ? peak : copy_gbs;
      std::string libs;
      if (r.own_ms >= 0)
        libs = r.onednn_ms >= 0 ? fmt::format("{:.2f} / {:.2f}, {}", r.own_ms, r.onednn_ms, r.used)
                                : fmt::format("{:.2f} / (no oneDNN), {}", r.own_ms, r.used);
      fmt::print("{:<44} {:>5} {:>9.2f} {:>6.2f} {} {:>6.1f} {} {:>7.0f}%   {}\n", r.pass,
                 r.count, r.ms, r.work, r.flops ? "GF" : "GB", rate, r.flops ? "GF/s" : "GB/s",
                 100 * rate / limit, libs);
      if (!r.pass.starts_with("meta")) total += r.ms;
      if (r.pass.starts_with("conv")) conv += r.ms;
    }
    fmt::print("\nsum of the STE step's passes (convs, batch norm with its ReLU and add, "
               "quantizer): {:.1f} ms (convs {:.1f} ms); MetaQuant adds its meta line\n",
               total, conv);
    fmt::print("\nbatch norm + (add) + ReLU, forward and backward through autograd, all "
               "occurrences: fused (batch_norm_relu) against batch_norm, add, relu\n");
    double fused_sum = 0, separate_sum = 0;
    for (const Fusion& f : fusion) {
      fmt::print("  {:<22} x{}  fused {:6.2f} ms  separate {:6.2f} ms  ({:.2f}x)\n", f.what,
                 f.count, f.fused_ms, f.separate_ms, f.separate_ms / f.fused_ms);
      fused_sum += f.fused_ms;
      separate_sum += f.separate_ms;
    }
    fmt::print("  all                        fused {:6.2f} ms  separate {:6.2f} ms\n", fused_sum,
               separate_sum);
  } catch (const std::exception& e) {
    fmt::print(stderr, "roofline: {}\n", e.what());
    return 1;
  }
  return 0;
}
