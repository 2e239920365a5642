// Times the CPU conv backend (forward, backward-input, backward-weight) on every ResNet20 conv
// shape at batch 128; compare with benchmarks/conv_bench_torch.py (same shapes, same threads).
// Usage: conv_bench [--threads 2] [--reps 10] [--batch 128] [--library default|own|onednn]
// (--library: which implementation runs every pass; default: the engine's choice per pass,
// engine/cpu/conv_library.h)
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <random>

#include "engine/backend.h"
#include "engine/cpu/conv_library.h"
#include "engine/parallel.h"

using namespace mq;

namespace {
struct Shape2 {
  const char* name;
  int64_t c, h, k, r, stride, pad;
};
const Shape2 kShapes[] = {
    {"conv1 3->16 32x32", 3, 32, 16, 3, 1, 1},
    {"16->16 32x32", 16, 32, 16, 3, 1, 1},
    {"16->32 s2 32x32", 16, 32, 32, 3, 2, 1},
    {"32->32 16x16", 32, 16, 32, 3, 1, 1},
    {"32->64 s2 16x16", 32, 16, 64, 3, 2, 1},
    {"64->64 8x8", 64, 8, 64, 3, 1, 1},
    {"ds 16->32 1x1 s2", 16, 32, 32, 1, 2, 0},
    {"ds 32->64 1x1 s2", 32, 16, 64, 1, 2, 0},
};

Tensor random_tensor(const Shape& s, uint32_t seed) {
  Tensor t = Tensor::empty(s, DType::f32);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

// The machine is shared: the minimum over repetitions is the least disturbed run.
// With --clock cpu the process CPU time is measured instead (time spent descheduled by other
// load does not count; with several threads it is the sum over threads).
bool g_cpu_clock = false;
double now_ms() {
  if (g_cpu_clock) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
  }
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}
template <class F>
double best_ms(F&& f, int reps) {
  f();  // warm-up: scratch buffers, page faults
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_ms();
    f();
    best = std::min(best, now_ms() - t0);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU conv benchmark on ResNet20 shapes"};
  int threads = 2, reps = 10;
  int64_t batch = 128;
  app.add_option("--threads", threads, "OpenMP threads");
  app.add_option("--reps", reps, "timed repetitions (best reported)");
  app.add_option("--batch", batch, "batch size");
  std::string clock = "wall";
  app.add_option("--clock", clock, "wall or cpu (process CPU time)")->check(CLI::IsMember({"wall", "cpu"}));
  std::string library = "default";
  app.add_option("--library", library, "default, own or onednn")
      ->check(CLI::IsMember({"default", "own", "onednn"}));
  CLI11_PARSE(app, argc, argv);
  if (library != "default" && library != "own" && !cpu::onednn_built()) {
    std::fprintf(stderr, "conv_bench: --library %s: this build has no oneDNN (libdnnl-dev)\n",
                 library.c_str());
    return 1;
  }
  if (library == "own") cpu::set_conv_library(cpu::ConvLibrary::own);
  if (library == "onednn") cpu::set_conv_library(cpu::ConvLibrary::onednn);
  set_num_threads(threads);
  g_cpu_clock = clock == "cpu";
  std::printf("mq conv (f32, batch %ld, %d threads), best of %d, %s ms; libraries: %s\n",
              long(batch), threads, reps, clock.c_str(),
              library == "default" ? "the engine's choice per pass and shape (after each time: m = mq, o = oneDNN)"
                                   : library.c_str());
  std::printf("%-20s %9s %9s %9s %9s %8s\n", "shape", "fwd", "bwd_in", "bwd_w", "total",
              "GFLOP/s");
  double sum = 0;
  for (const auto& s : kShapes) {
    Conv2dParams p{s.stride, s.pad};
    const int64_t o = (s.h + 2 * s.pad - s.r) / s.stride + 1;
    Tensor x = random_tensor({batch, s.c, s.h, s.h}, 1);
    Tensor w = random_tensor({s.k, s.c, s.r, s.r}, 2);
    Tensor y = Tensor::empty({batch, s.k, o, o});
    Tensor gy = random_tensor(y.shape(), 3);
    Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape());
    const double f = best_ms([&] { cpu::conv2d_forward(x, w, y, p); }, reps);
    const double bi = best_ms([&] { cpu::conv2d_backward_input(gy, w, gx, p); }, reps);
    const double bw = best_ms([&] { cpu::conv2d_backward_weight(gy, x, gw, p); }, reps);
    const double flop = 2.0 * batch * s.k * o * o * s.c * s.r * s.r;
    const double total = f + bi + bw;
    sum += total;
    auto lib = [&](cpu::ConvPass pass) {
      const auto l = cpu::conv_library(pass, s.c, s.k, s.r, s.r, p);
      return l == cpu::ConvLibrary::onednn ? 'o' : 'm';
    };
    std::printf("%-20s %8.2f%c %8.2f%c %8.2f%c %9.2f %8.1f\n", s.name, f, lib(cpu::ConvPass::forward),
                bi, lib(cpu::ConvPass::backward_input), bw, lib(cpu::ConvPass::backward_weight),
                total,
                3 * flop / (total * 1e6));
  }
  std::printf("sum over shapes: %.2f ms\n", sum);
}
