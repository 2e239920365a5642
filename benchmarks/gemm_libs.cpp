// Single-precision GEMM, row-major C[M,N] = op(A) * B, through every library on this machine,
// on the shapes mq's training runs, so the project can pick the fastest per shape: mq's
// cpu::gemm and its micro kernel (kernels/nn/sgemm_kernel.h), oneDNN's dnnl_sgemm, OpenBLAS and
// BLIS (dlopen'ed: both export the Fortran sgemm_), LIBXSMM 1.17's JIT kernels over OpenMP tiles.
//   gemm_libs [--threads 2] [--reps 5] [--shapes a,b,c,d] [--gemm 2048]
// Shapes: a n x n x n (the machine's peak); b the LSTM meta-network forward, 8192 x 400 x 100;
// c its backward, A^T B with A stored [8192, 400]: 400 x 102 x 8192; d one image's conv weight
// gradient, 144 x 16 x 1024. Each line: best of --reps after a warm-up, and the largest
// |C - C_mq| (every library must compute the same product; not asserted, only printed).
// OpenBLAS runs in a child process (this program again, with an internal flag), once with the
// environment as set and once without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE; this process never
// loads it nor changes those variables.
#include <dlfcn.h>
#include <fmt/format.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "benchmarks/harness/child_process.h"
#include "engine/backend.h"
#include "kernels/nn/sgemm_kernel.h"
#include "engine/parallel.h"
#include "models/layers.h"

#if MQ_WITH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#if MQ_WITH_XSMM
#include <libxsmm.h>
#endif

using namespace mq;

namespace {

struct GemmShape {
  char id;
  int64_t m, n, k;
  bool trans_a;  // A stored [K, M] row-major
};

// One shape's operands and mq's cpu::gemm result, the reference of the difference column.
struct Problem {
  GemmShape s;
  Tensor a, b, ref;
  std::string label() const {
    return fmt::format("{} {}x{}x{}{}", s.id, s.m, s.n, s.k, s.trans_a ? " At" : "");
  }
};

Problem make_problem(const GemmShape& s) {
  Problem p{s, Tensor::empty(s.trans_a ? Shape{s.k, s.m} : Shape{s.m, s.k}),
            Tensor::empty({s.k, s.n}), Tensor::empty({s.m, s.n})};
  InitRng(1).fill_uniform(p.a, -1, 1);
  InitRng(2).fill_uniform(p.b, -1, 1);
  cpu::gemm(p.a, s.trans_a, p.b, false, p.ref, 0.0);
  return p;
}

void print_line(const std::string& shape, const std::string& lib, const std::string& kernel,
                const std::string& ms, const std::string& rate, const std::string& diff) {
  fmt::print("{:<20} {:<16} {:<40} {:>9} {:>9} {:>10}\n", shape, lib, kernel, ms, rate, diff);
}
void print_na(const Problem& p, const std::string& lib, const std::string& why) {
  print_line(p.label(), lib, why, "n/a", "n/a", "");
}

// Times `run(c)` (best of `reps` after one warm-up: the least disturbed run on a shared
// machine) into a C prefilled with NaN, so a library that leaves part of C unwritten shows up
// in the difference, and prints the line. `own`: C where the library writes it itself.
void time_row(const Problem& p, int reps, const std::string& lib, const std::string& kernel,
              const std::function<void(float*)>& run, float* own = nullptr) {
  const int64_t m = p.s.m, n = p.s.n;
  std::vector<float> buf(own ? 0 : size_t(m * n), NAN);
  float* c = own ? own : buf.data();
  run(c);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run(c);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const float* ref = p.ref.data<float>();
  double diff = 0;
  for (int64_t i = 0; i < m * n; ++i) {
    const double d = std::fabs(double(c[i]) - ref[i]);
    if (!(d <= diff)) diff = d;  // NaN sticks
  }
  print_line(p.label(), lib, kernel, fmt::format("{:.3f}", best * 1e3),
             fmt::format("{:.1f}", 2.0 * m * n * p.s.k / best / 1e9), fmt::format("{:.2e}", diff));
}

// ---- Fortran sgemm_ (OpenBLAS, BLIS): column-major, so row-major C = op(A) B is
// C^T = B^T op(A)^T: B's buffer is B^T (ld N); A's buffer is A^T (ld K), or with A stored
// [K, M] it is A itself (ld M), hence transb 'T'. Debian's BLAS interfaces take 32-bit ints.
using FSgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                        const float*, const int*, const float*, const int*, const float*, float*,
                        const int*);

void time_fortran(const Problem& p, int reps, const std::string& lib, const std::string& kernel,
                  FSgemm sgemm) {
  const GemmShape& s = p.s;
  const int m = int(s.m), n = int(s.n), k = int(s.k), lda = s.trans_a ? m : k;
  const float one = 1, zero = 0;
  const float *a = p.a.data<float>(), *b = p.b.data<float>();
  time_row(p, reps, lib, kernel, [&](float* c) {
    sgemm("N", s.trans_a ? "T" : "N", &n, &m, &k, &one, b, &n, a, &lda, &zero, c, &n);
  });
}

// The file a symbol was loaded from, links resolved.
std::string real_file(void* sym) {
  Dl_info info{};
  if (!sym || !dladdr(sym, &info) || !info.dli_fname) return "?";
  char* path = realpath(info.dli_fname, nullptr);
  std::string out = path ? path : info.dli_fname;
  free(path);
  return out;
}

// ---- OpenBLAS: in the child process only (see the top) ----
int openblas_child(const std::vector<Problem>& problems, int threads, int reps,
                   const std::string& lib) {
  void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  auto sgemm = h ? reinterpret_cast<FSgemm>(dlsym(h, "sgemm_")) : nullptr;
  if (!sgemm) {
    fmt::print("# {}: not loaded (Debian: libopenblas0): {}\n", lib, h ? "no sgemm_" : dlerror());
    return 0;
  }
  if (auto set = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads")))
    set(threads);
  auto core = reinterpret_cast<char* (*)()>(dlsym(h, "openblas_get_corename"));
  fmt::print("# {}: {}\n", lib, real_file(reinterpret_cast<void*>(sgemm)));
  for (const Problem& p : problems)
    time_fortran(p, reps, lib, fmt::format("sgemm_ {}", core ? core() : "?"), sgemm);
  return 0;
}

// Runs this program as the OpenBLAS child and returns what it printed; `clean` drops the two
// variables that force a kernel, in the child only.
std::string openblas_lines(const char* self, std::vector<std::string> args,
                           const std::string& label, bool clean) {
  args.push_back(label);
  return bench::run_self(self, args, clean);
}

void print_new_lines(std::set<std::string>& seen, const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line[0] != '#' || seen.insert(line).second) fmt::print("{}\n", line);
}

// ---- mq's micro kernel, single-threaded by design: each thread takes a block of whole
// 6-row micro tiles (A read through strides, so A^T needs no copy).
#if MQ_HAVE_SGEMM_KERNEL
void time_mq_kernel(const Problem& p, int reps, int threads) {
  using namespace cpu::sgemm_detail;
  const GemmShape& s = p.s;
  const int64_t ars = s.trans_a ? 1 : s.k, acs = s.trans_a ? s.m : 1, tiles = (s.m + kMr - 1) / kMr;
  const float *a = p.a.data<float>(), *b = p.b.data<float>();
  const std::string kernel = fmt::format("sgemm {}x{} {}, 6-row blocks", kMr, kLanes * kNv,
                                         kLanes == 16 ? "AVX-512" : "AVX2");
  time_row(p, reps, "mq kernel", kernel, [&](float* c) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t r0 = std::min(s.m, tiles * t / nt * kMr),
                    r1 = std::min(s.m, tiles * (t + 1) / nt * kMr);
      if (r1 > r0)
        cpu::sgemm(r1 - r0, s.n, s.k, a + r0 * ars, ars, acs, b, s.n, c + r0 * s.n, s.n, false);
    }
  });
}
#endif

#if MQ_WITH_DNNL
std::string dnnl_kernel() {
  const dnnl_version_t* v = dnnl_version();
  const int id = int(dnnl_get_effective_cpu_isa());  // the ISA its JIT kernels target
  const std::map<int, const char*> isa{{0x7, "avx2"},
                                       {0x407, "avx2_vnni"},
                                       {0x27, "avx512_core"},
                                       {0x67, "avx512_core_vnni"},
                                       {0xe7, "avx512_core_bf16"}};
  return fmt::format("dnnl_sgemm {}.{}.{} {}", v->major, v->minor, v->patch,
                     isa.count(id) ? isa.at(id) : fmt::format("isa {:#x}", id));
}
#endif

// ---- LIBXSMM: JIT kernels for column-major tiles. Row-major C = op(A) B is column-major
// C^T = B^T op(A)^T, so a kernel of (m', n', k') = (C columns, C rows, depth) reads B's rows as
// its A' (ld N) and A's rows as its B' (ld K; A stored [K, M] needs TRANS_B, ld M, which the
// 1.17 JIT may refuse: then n/a). C is cut into rows x columns tiles (row tiles even, a
// multiple of the threads, about 64 rows; columns up to 512), depth in blocks of up to 256:
// the first block overwrites (beta 0), the rest accumulate (beta 1). Kernels are dispatched
// once before timing, as an application would keep them.
#if MQ_WITH_XSMM
void time_xsmm(const Problem& p, int reps, int threads) {
  const GemmShape& s = p.s;
  auto cuts = [](int64_t len, int64_t parts) {
    std::vector<int64_t> at;
    for (int64_t i = 0; i <= parts; ++i) at.push_back(len * i / parts);
    return at;
  };
  const int64_t row_parts = ((s.m + 63) / 64 + threads - 1) / threads * threads;
  const std::vector<int64_t> rows = cuts(s.m, row_parts), cols = cuts(s.n, (s.n + 511) / 512),
                             depth = cuts(s.k, (s.k + 255) / 256);
  // One kernel per distinct (C columns, C rows, depth, first depth block); `plan` holds the
  // one of every (row tile, column tile, depth block), so timing does no look-ups.
  const size_t nr = rows.size() - 1, nc = cols.size() - 1, nd = depth.size() - 1;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, libxsmm_smmfunction> kernels;
  std::vector<libxsmm_smmfunction> plan;
  const libxsmm_blasint lda = s.n, ldb = s.trans_a ? s.m : s.k, ldc = s.n;
  const float alpha = 1, beta0 = 0, beta1 = 1;
  const int flags = s.trans_a ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
  for (size_t i = 0; i < nr; ++i)
    for (size_t j = 0; j < nc; ++j)
      for (size_t l = 0; l < nd; ++l) {
        const int64_t km = cols[j + 1] - cols[j], kn = rows[i + 1] - rows[i];
        const int64_t kk = depth[l + 1] - depth[l];
        auto& fn = kernels[{km, kn, kk, l == 0}];
        if (!fn)
          fn = libxsmm_smmdispatch(km, kn, kk, &lda, &ldb, &ldc, &alpha, l == 0 ? &beta0 : &beta1,
                                   &flags, &prefetch);
        if (!fn)
          return print_na(
              p, "LIBXSMM",
              fmt::format("no JIT kernel for {}x{}x{}{}", km, kn, kk, s.trans_a ? " trans_b" : ""));
        plan.push_back(fn);
      }
  const float *a = p.a.data<float>(), *b = p.b.data<float>();
  const std::string name = fmt::format("JIT {} {}, tiles ~{}x{}x{}", LIBXSMM_VERSION,
                                       libxsmm_get_target_arch(), rows[1], cols[1], depth[1]);
  time_row(p, reps, "LIBXSMM", name, [&](float* c) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (size_t i = 0; i < nr; ++i)
      for (size_t j = 0; j < nc; ++j) {
        const int64_t r0 = rows[i], c0 = cols[j];
        for (size_t l = 0; l < nd; ++l) {
          const int64_t k0 = depth[l];
          const float* ab = s.trans_a ? a + k0 * s.m + r0 : a + r0 * s.k + k0;
          plan[(i * nc + j) * nd + l](b + k0 * s.n + c0, ab, c + r0 * s.n + c0);
        }
      }
  });
}
#endif

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"single-precision GEMM through mq, oneDNN, OpenBLAS, BLIS and LIBXSMM"};
  int threads = 2, reps = 5;
  int64_t peak_n = 2048;
  std::string shape_ids = "a,b,c,d", child;
  app.add_option("--threads", threads, "CPU threads")->check(CLI::Range(1, 256));
  app.add_option("--reps", reps, "timed repetitions after a warm-up (best reported)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--shapes", shape_ids, "comma-separated shapes among a,b,c,d");
  app.add_option("--gemm", peak_n, "n of shape a (n x n x n)")->check(CLI::Range(8, 16384));
  app.add_option("--openblas-child", child, "(internal) time OpenBLAS in this process, line label");
  CLI11_PARSE(app, argc, argv);

  const GemmShape all[] = {{'a', peak_n, peak_n, peak_n, false},
                           {'b', 8192, 400, 100, false},
                           {'c', 400, 102, 8192, true},
                           {'d', 144, 16, 1024, false}};
  std::vector<GemmShape> shapes;
  for (const GemmShape& s : all)
    if (shape_ids.find(s.id) != std::string::npos) shapes.push_back(s);
  if (shapes.empty()) {
    fmt::print(stderr, "gemm_libs: no shape among a,b,c,d in --shapes '{}'\n", shape_ids);
    return 2;
  }
  try {
    set_num_threads(threads);  // OpenMP: mq, oneDNN (Debian's is built on OpenMP)
    std::vector<Problem> problems;
    for (const GemmShape& s : shapes) problems.push_back(make_problem(s));
    if (!child.empty()) return openblas_child(problems, threads, reps, child);

    fmt::print("gemm_libs: sgemm, row-major C = op(A) B, {} threads, best of {} after a warm-up\n",
               threads, reps);
    // BLIS in this process: its sgemm_ stays local to its handle (RTLD_LOCAL). Its BLAS
    // interface must take 32-bit ints (FSgemm), as Debian builds it.
    void* blis = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    auto blis_sgemm = blis ? reinterpret_cast<FSgemm>(dlsym(blis, "sgemm_")) : nullptr;
    auto blis_int =
        blis ? reinterpret_cast<int64_t (*)()>(dlsym(blis, "bli_info_get_blas_int_type_size"))
             : nullptr;
    std::string blis_kernel = "sgemm_";
    if (blis_sgemm && blis_int && blis_int() != 32) {
      fmt::print("# BLIS: its BLAS takes {}-bit integers, not timed\n", blis_int());
      blis_sgemm = nullptr;
    } else if (blis_sgemm) {
      if (auto set = reinterpret_cast<void (*)(int64_t)>(dlsym(blis, "bli_thread_set_num_threads")))
        set(threads);
      auto arch_id = reinterpret_cast<int (*)()>(dlsym(blis, "bli_arch_query_id"));
      auto arch_name = reinterpret_cast<const char* (*)(int)>(dlsym(blis, "bli_arch_string"));
      if (arch_id && arch_name) blis_kernel += fmt::format(" {}", arch_name(arch_id()));
      fmt::print("# BLIS: {}\n", real_file(reinterpret_cast<void*>(blis_sgemm)));
    } else {
      fmt::print("# BLIS: not loaded (Debian: libblis4): {}\n", blis ? "no sgemm_" : dlerror());
    }
#if MQ_WITH_XSMM
    libxsmm_init();
#endif
    const char* forced = std::getenv("OPENBLAS_CORETYPE");
    const std::string env_label = fmt::format("OpenBLAS {}", forced && *forced ? forced : "env");
    print_line("shape", "library", "kernel", "ms", "GFLOP/s", "max|dC|");
    std::set<std::string> seen;
    for (const Problem& p : problems) {
      Tensor ct = Tensor::full({p.s.m, p.s.n}, NAN);  // mq writes its own tensor
      time_row(
          p, reps, "mq cpu::gemm", "Eigen, OpenMP row blocks",
          [&](float*) { cpu::gemm(p.a, p.s.trans_a, p.b, false, ct, 0.0); }, ct.data<float>());
#if MQ_HAVE_SGEMM_KERNEL
      time_mq_kernel(p, reps, threads);
#else
      print_na(p, "mq kernel", "not built (no AVX2/AVX-512 at compile time)");
#endif
#if MQ_WITH_DNNL
      time_row(p, reps, "oneDNN", dnnl_kernel(), [&](float* c) {
        const int64_t lda = p.s.trans_a ? p.s.m : p.s.k;
        dnnl_sgemm(p.s.trans_a ? 'T' : 'N', 'N', p.s.m, p.s.n, p.s.k, 1.f, p.a.data<float>(), lda,
                   p.b.data<float>(), p.s.n, 0.f, c, p.s.n);
      });
#else
      print_na(p, "oneDNN", "not built (MQ_WITH_DNNL off)");
#endif
      // OpenBLAS twice, each in a fresh child: as the environment forces it, then its own pick
      // (each child's "# library file" line printed once).
      const std::vector<std::string> args{
          "--shapes",        std::string(1, p.s.id),  "--gemm", std::to_string(peak_n),
          "--threads",       std::to_string(threads), "--reps", std::to_string(reps),
          "--openblas-child"};
      print_new_lines(seen, openblas_lines(argv[0], args, env_label, false));
      print_new_lines(seen, openblas_lines(argv[0], args, "OpenBLAS own", true));
      if (blis_sgemm)
        time_fortran(p, reps, "BLIS", blis_kernel, blis_sgemm);
      else
        print_na(p, "BLIS", "not loaded");
#if MQ_WITH_XSMM
      time_xsmm(p, reps, threads);
#else
      print_na(p, "LIBXSMM", "not built (libxsmm-dev missing)");
#endif
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "gemm_libs: {}\n", e.what());
    return 1;
  }
  return 0;
}
