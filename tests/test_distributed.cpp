// Data parallelism and gradient accumulation (meta/data_parallel.h, docs/distributed.md): the
// slicing arithmetic and batch-norm rule in process, then the tools: `mpirun -np 2` equals
// `--accumulate 2` bit for bit (logs and checkpoint), `-np 4` equals `--accumulate 4` within the
// golden rule v2, trials spread over ranks equal the single-process trials, a killed rank ends
// the job, and a build without MPI refuses to run under a launcher.
#include <catch2/catch.hpp>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/dist/job.h"
#include "engine/io/checkpoint.h"
#include "meta/data_parallel.h"
#include "meta/golden/golden.h"
#include "tool_runs.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {
// Rank r of N for the slicing arithmetic; no collective is called.
class FakeRanks final : public Communicator {
 public:
  FakeRanks(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return "fake"; }
  void allreduce_sum(std::vector<Tensor>&) override { FAIL("collective"); }
  std::vector<std::string> allgather(const std::string&) override { FAIL("collective"); return {}; }
  void broadcast(std::string&, int) override { FAIL("collective"); }
  void barrier() override { FAIL("collective"); }
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  int rank_, size_;
};
}  // namespace

TEST_CASE("data parallel: ranks x micro-batches cut a batch into equal slices", "[parallel]") {
  for (int64_t n = 1; n <= 70; ++n)
    for (int N = 1; N <= 4; ++N)
      for (int K = 1; K <= 3; ++K) {
        if (n < N * K) continue;
        int64_t covered = 0;
        for (int r = 0; r < N; ++r) {
          FakeRanks ranks(r, N);
          const auto slices = rank_slices(n, DataParallel{&ranks, K, 0});
          const auto [rb, re] = part_bounds(n, N, r);
          REQUIRE(rb == covered);
          REQUIRE(re - rb >= n / N);
          REQUIRE(re - rb <= n / N + 1);
          // Rank r's K slices are global slices r*K .. r*K+K-1 of N*K, and tile its part.
          REQUIRE(slices.size() == size_t(K));
          int64_t at = 0;
          for (int j = 0; j < K; ++j) {
            const auto [b, e] = part_bounds(n, N * K, r * K + j);
            REQUIRE(slices[size_t(j)] == std::pair{b - rb, e - rb});
            REQUIRE(slices[size_t(j)].first == at);
            REQUIRE(e > b);
            at = e - rb;
          }
          REQUIRE(at == re - rb);
          covered = re;
        }
        REQUIRE(covered == n);
      }
  const auto s = rank_slices(10, DataParallel{nullptr, 3, 0});
  REQUIRE(s == std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 6}, {6, 10}});
}

TEST_CASE("data parallel: an empty slice is refused naming --accumulate", "[parallel]") {
  const DataParallel four{nullptr, 4, 0};
  REQUIRE_NOTHROW(check_slices_fill(128, 1000, four));  // last batch 1000 % 128 = 104
  REQUIRE_NOTHROW(check_slices_fill(8, 16, four));
  try {
    check_slices_fill(128, 1026, four);  // last batch of 2 images
    FAIL("accepted");
  } catch (const Error& e) {
    REQUIRE_THAT(e.what(), Catch::Contains("--accumulate 4") && Catch::Contains("last batch"));
  }
  REQUIRE_THROWS_WITH(check_slices_fill(3, 99, four), Catch::Contains("but a batch of 3"));
}

TEST_CASE("data parallel: deferred batch norm updates once from the slices' mean statistics",
          "[parallel]") {
  // Two slices through a BatchNorm2d with deferred statistics against the formula.
  BatchNorm2d bn(3);
  bn.train();
  Tensor x = Tensor::empty({6, 3, 2, 2});
  float* p = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = float(std::sin(0.7 * double(i)) * 3 + i % 5);
  BatchNorm2d plain(3);
  plain.train();
  Tensor a = narrow_rows(x, 0, 2), b = narrow_rows(x, 2, 6);
  Tensor ma = plain.running_mean.clone(), va = plain.running_var.clone();
  bn.defer_stats = true;
  bn.forward(a);
  bn.forward(b);
  // Each slice's statistics alone (momentum 1), as a rank would compute them.
  auto stats = [&](const Tensor& part) {
    Tensor m = Tensor::zeros({3}), v = Tensor::zeros({3});
    batch_norm(part, plain.weight, plain.bias, m, v, {true, 1.0, 1e-5});
    return std::pair{m.to_vector<float>(), v.to_vector<float>()};
  };
  const auto [m0, v0] = stats(a);
  const auto [m1, v1] = stats(b);
  REQUIRE(bn.running_mean.to_vector<float>() == std::vector<float>{0, 0, 0});  // deferred
  bn.apply_stats(2);
  const auto rm = bn.running_mean.to_vector<float>(), rv = bn.running_var.to_vector<float>();
  for (int c = 0; c < 3; ++c) {
    REQUIRE(rm[c] == Approx(0.1 * (m0[c] + m1[c]) / 2).epsilon(1e-6));
    REQUIRE(rv[c] == Approx(0.9 + 0.1 * (v0[c] + v1[c]) / 2).epsilon(1e-6));
  }
  REQUIRE(bn.num_batches_tracked.data<int64_t>()[0] == 1);
  REQUIRE(bn.stats_sum.batches == 0);
}

namespace {

const std::string kMpirun = MQ_MPIRUN;

bool have_mpi() {
  if (kMpirun.empty() || !mpi_available()) {
    WARN("skipped: mq built without MPI (cmake -DMQ_MPI=ON, Debian libopenmpi-dev)");
    return false;
  }
  return true;
}

std::vector<std::string> mpirun_args(int ranks, const std::vector<std::string>& tool_args) {
  std::vector<std::string> a{"--allow-run-as-root", "--oversubscribe", "-np",
                             std::to_string(ranks), MQ_MQTRAIN};
  a.insert(a.end(), tool_args.begin(), tool_args.end());
  return a;
}

test::Exit mpirun(const fs::path& dir, int ranks, const std::string& args) {
  const fs::path out = dir / "output.txt";
  return test::wait_for(test::spawn(kMpirun, mpirun_args(ranks, test::split(args)), out), out,
                        600);
}

// The one run directory under `results`.
fs::path run_dir(const fs::path& results) {
  for (auto& e : fs::recursive_directory_iterator(results))
    if (e.is_directory() && e.path().filename() == "r" && e.path().parent_path().filename() == "runs-Quant")
      return e.path();
  FAIL("no run directory under " << results);
  return {};
}

struct Mode {
  const char* name;
  std::string args;
  bool adam;
};
const Mode kModes[] = {
    {"fp-sgdm", "pretrain -o SGD-M --lr 0.05", false},
    {"ste-adam", "quantize -meta ste -o Adam --lr 0.001", true},
    {"multifc-sgd", "quantize -meta MultiFC -o SGD --lr 0.01", false},
    {"lstmfc-adam", "quantize -meta LSTMFC -hidden 8 -o Adam --lr 0.001", true},
};

// Two epochs of four steps (an epoch boundary, evaluation and a checkpoint inside), batch
// slices of 10 or 20 images.
const std::string kTwoEpochs = " -d synthetic:160 -bs 40 -n 2";
// Three steps of 128: how far a 4-rank run follows the single process within the golden rule.
// Summing in another order changes the last bits, and 1-bit training amplifies them: a weight
// near zero changes sign, so its quantized value jumps. Measured from random weights (batch 128,
// -np 4 against --accumulate 4): the running loss agrees within 1e-4 for 3-4 steps and then
// drifts, over 8 steps by 5e-4 (SGD-M), 1e-4 (MultiFC), 3e-3 (LSTMFC) and 4e-2 (STE Adam,
// whose first step after the epoch boundary jumps). The golden traces are 1 to 5 steps too.
const std::string kThreeSteps = " -d synthetic:384 -bs 128 -n 1";

std::string common_args(const fs::path& dir, const std::string& data) {
  return data + " --threads 1 --seed 3 --run r --results " + (dir / "results").string();
}

// "iter, value" lines of a log.
std::vector<double> log_values(const fs::path& file) {
  std::vector<double> v;
  std::istringstream in(test::slurp(file));
  for (std::string line; std::getline(in, line);)
    v.push_back(std::stod(line.substr(line.find(',') + 1)));
  return v;
}

fs::path train(const fs::path& dir, const Mode& m, const std::string& data, int ranks,
               int accumulate) {
  fs::create_directories(dir);
  // The ranks also compare their parameters after every step (--check-sync 1).
  const std::string args = m.args + common_args(dir, data) + " --accumulate " +
                           std::to_string(accumulate) + (ranks > 1 ? " --check-sync 1" : "");
  const test::Exit e = ranks == 1 ? test::mqtrain(dir, args) : mpirun(dir, ranks, args);
  INFO(e.output);
  REQUIRE(e.code == 0);
  return run_dir(dir / "results");
}

}  // namespace

TEST_CASE("data parallel: mpirun -np 2 equals --accumulate 2 bit for bit", "[mpi]") {
  if (!have_mpi()) return;
  for (const Mode& m : kModes) {
    DYNAMIC_SECTION(m.name) {
      const fs::path base = test::fresh_dir("np2", m.name);
      const fs::path one = train(base / "acc", m, kTwoEpochs, 1, 2);
      const fs::path two = train(base / "np", m, kTwoEpochs, 2, 1);
      for (const char* f : {"loss.txt", "train-acc.txt", "test-acc.txt", "lr.txt", "checkpoint.mqck"}) {
        INFO(f);
        REQUIRE(test::slurp(one / f) == test::slurp(two / f));
      }
      REQUIRE(test::metrics_without_timing(test::slurp(one / "metrics.jsonl")) ==
              test::metrics_without_timing(test::slurp(two / "metrics.jsonl")));
      REQUIRE(log_values(one / "loss.txt").size() == 8);  // 4 steps x 2 epochs
      fs::remove_all(base);
    }
  }
}

TEST_CASE("data parallel: mpirun -np 4 equals --accumulate 4 within the golden rule", "[mpi]") {
  if (!have_mpi()) return;
  for (const Mode& m : kModes) {
    DYNAMIC_SECTION(m.name) {
      const fs::path base = test::fresh_dir("np4", m.name);
      const fs::path one = train(base / "acc", m, kThreeSteps, 1, 4);
      const fs::path four = train(base / "np", m, kThreeSteps, 4, 1);
      const std::vector<double> la = log_values(one / "loss.txt"), lb = log_values(four / "loss.txt");
      REQUIRE(la.size() == 3);
      REQUIRE(la.size() == lb.size());
      for (size_t i = 0; i < la.size(); ++i)
        REQUIRE(std::abs(lb[i] - la[i]) <= golden::kLossRel * std::abs(la[i]));
      const Checkpoint a = load_checkpoint((one / "checkpoint.mqck").string());
      const Checkpoint b = load_checkpoint((four / "checkpoint.mqck").string());
      std::vector<golden::Report> reports(1);
      size_t compared = 0;
      for (const auto& [key, t] : a.tensors) {
        const bool final_tensor = key.starts_with("model.") || key.starts_with("trainer.meta.");
        if (!final_tensor || !is_floating(t.dtype())) continue;
        REQUIRE(b.tensors.count(key));
        const golden::TensorDiff d = golden::compare_tensor(
            key, b.tensors.at(key), t, m.adam ? golden::Rule::final_adam : golden::Rule::final_sgd);
        INFO(d.str());
        REQUIRE(d.ok);
        reports[0].tensors.push_back(d);
        ++compared;
      }
      REQUIRE(compared > 60);  // ResNet20's weights, BN and fc (and the meta network)
      if (m.adam) {
        const golden::AdamFraction f = golden::adam_fraction({&reports[0]});
        INFO(f.str());
        REQUIRE(f.ok);
      }
      fs::remove_all(base);
    }
  }
}

TEST_CASE("data parallel: --spread-trials gives the single process's trials and summary", "[mpi]") {
  if (!have_mpi()) return;
  const fs::path base = test::fresh_dir("spread", "trials");
  const std::string args = "pretrain -o SGD --lr 0.05 -d synthetic:80 -bs 40 -n 2 --threads 1 "
                           "--trials 3 --run t --results ";
  const test::Exit one = test::mqtrain(base, args + (base / "one").string());
  REQUIRE(one.code == 0);
  const test::Exit spread = mpirun(base, 2, args + (base / "spread").string() + " --spread-trials");
  INFO(spread.output);
  REQUIRE(spread.code == 0);
  auto summary = [](const std::string& out) { return out.substr(out.find("3 trials: ")); };
  REQUIRE(summary(spread.output) .substr(0, 60) == summary(one.output).substr(0, 60));
  for (int t = 0; t < 3; ++t) {
    const std::string run = "resnet20-synthetic:80/runs-Quant/t-trial" + std::to_string(t);
    for (const char* f : {"loss.txt", "test-acc.txt", "checkpoint.mqck"})
      REQUIRE(test::slurp(base / "one" / run / f) == test::slurp(base / "spread" / run / f));
  }
  fs::remove_all(base);
}

TEST_CASE("data parallel: --resume under mpirun continues bit for bit; another slicing is refused",
          "[mpi]") {
  if (!have_mpi()) return;
  const fs::path base = test::fresh_dir("np2", "resume");
  const Mode& m = kModes[2];  // MetaQuant MultiFC: meta state, g_W^ and W.grad in the checkpoint
  const fs::path whole = train(base / "whole", m, kTwoEpochs, 2, 1);
  // The same run stopped after its first epoch, then resumed for the second, both under mpirun.
  const std::string first = m.args + common_args(base / "parts", " -d synthetic:160 -bs 40");
  REQUIRE(mpirun(base, 2, first + " -n 1").code == 0);
  const test::Exit resumed = mpirun(base, 2, first + " -n 2 --resume");
  INFO(resumed.output);
  REQUIRE(resumed.code == 0);
  REQUIRE(test::contains(resumed.output, "resuming"));
  const fs::path parts = run_dir(base / "parts/results");
  for (const char* f : {"loss.txt", "test-acc.txt", "checkpoint.mqck"})
    REQUIRE(test::slurp(whole / f) == test::slurp(parts / f));
  // Four slices now against the checkpoint's two: refused, naming the setting.
  const test::Exit other = mpirun(base, 2, first + " --resume --accumulate 2 -n 3");
  INFO(other.output);
  REQUIRE(other.code != 0);
  REQUIRE(test::contains(other.output, "batch_slices = 4"));
  REQUIRE(test::contains(other.output, "mpirun -np times --accumulate"));
  fs::remove_all(base);
}

TEST_CASE("data parallel: --check-sync stops a job whose replicas drifted apart", "[mpi]") {
  if (!have_mpi()) return;
  const fs::path base = test::fresh_dir("np2", "drift");
  const fs::path out = base / "output.txt";
  // Rank 1 alone nudges a weight after iteration 2; the check after step 3 sees it.
  std::vector<std::string> args{"--allow-run-as-root", "--oversubscribe", "-np", "2",
                                MQ_MQTRAIN_FAULTS, "drift@2"};
  for (const std::string& a : test::split("pretrain -d synthetic:160 -bs 40 -n 1 --threads 1 "
                                          "--check-sync 1 --results " + (base / "R").string()))
    args.push_back(a);
  const test::Exit e = test::wait_for(test::spawn(kMpirun, args, out), out, 300);
  INFO(e.output);
  REQUIRE(e.code != 0);
  REQUIRE(test::contains(e.output, "--check-sync: after step 3 the parameters of rank(s) 1 differ"));
  fs::remove_all(base);
}

namespace {
// The pid of the mqtrain that is rank `rank` of a job whose command line mentions `marker`.
pid_t find_rank(int rank, const std::string& marker) {
  for (auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(e.path() / "cmdline"), env(e.path() / "environ");
    std::stringstream c, v;
    c << cmd.rdbuf();
    v << env.rdbuf();
    const std::string cmdline = c.str(), environ_text = v.str();
    if (cmdline.rfind(MQ_MQTRAIN, 0) != 0 || !test::contains(cmdline, marker)) continue;
    if (test::contains(environ_text, std::string("OMPI_COMM_WORLD_RANK=") + std::to_string(rank) + '\0'))
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}
}  // namespace

TEST_CASE("data parallel: a killed rank ends the whole job within seconds", "[mpi]") {
  if (!have_mpi()) return;
  const fs::path base = test::fresh_dir("np2", "kill");
  const fs::path out = base / "output.txt";
  const std::string args = "pretrain -d synthetic:20000 -bs 64 -n 50 --threads 1 --run r --results " +
                           (base / "results").string();
  const pid_t job = test::spawn(kMpirun, mpirun_args(2, test::split(args)), out);
  pid_t victim = -1;
  for (int i = 0; i < 600 && victim < 0; ++i) {  // until both ranks run (at most 60 s)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (find_rank(0, base.string()) > 0) victim = find_rank(1, base.string());
  }
  REQUIRE(victim > 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // into training
  const auto killed = std::chrono::steady_clock::now();
  REQUIRE(::kill(victim, SIGKILL) == 0);
  const test::Exit e = test::wait_for(job, out, 120);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  INFO(e.output);
  REQUIRE(e.signal == 0);     // mpirun itself ended, not killed by the test's timeout
  REQUIRE(e.code != 0);
  REQUIRE(seconds < 30);
  REQUIRE(test::contains(e.output, "rank 1"));
  fs::remove_all(base);
}

TEST_CASE("data parallel: a build without MPI refuses to run under a launcher", "[parallel]") {
  if (mpi_available()) {
    WARN("skipped: this build has MPI (the sanitizer build, without MPI, runs this test)");
    return;
  }
  const fs::path base = test::fresh_dir("nompi", "refuse");
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  const test::Exit e = test::mqtrain(base, "pretrain -d synthetic:40 -n 1 --results " +
                                               (base / "results").string());
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  INFO(e.output);
  REQUIRE(e.code == 1);
  REQUIRE(test::contains(e.output, "this build has no MPI"));
  REQUIRE(!fs::exists(base / "results"));
  fs::remove_all(base);
}

TEST_CASE("sweep: a grid of settings x trials writes the table and the figures", "[parallel]") {
  const fs::path base = test::fresh_dir("sweep", "grid");
  const std::string common = "sweep -d synthetic:40 -bs 20 -n 2 --threads 1 --trials 2 --results " +
                             (base / "R").string() + " --out " + (base / "out").string();
  const test::Exit e =
      test::mqtrain(base, common + " --grid meta=ste,MultiFC --grid optimizer=SGD");
  INFO(e.output);
  REQUIRE(e.code == 0);
  const std::string table = test::slurp(base / "out/table.md");
  REQUIRE(table.starts_with("| meta | optimizer | trials | best test acc % (mean) |"));
  REQUIRE(test::contains(table, "\n| ste | SGD | 2 |"));
  REQUIRE(test::contains(table, "\n| MultiFC | SGD | 2 |"));
  REQUIRE(test::contains(e.output, table));
  for (const char* f : {"test-acc.svg", "loss.svg"}) {
    const std::string svg = test::slurp(base / "out" / f);
    REQUIRE(svg.starts_with("<svg"));
    size_t lines = 0;
    for (size_t at = 0; (at = svg.find("<polyline", at)) != std::string::npos; ++at) ++lines;
    REQUIRE(lines == 2);  // one per setting
  }
  for (const char* run : {"meta-ste_optimizer-SGD-trial1", "meta-MultiFC_optimizer-SGD-trial0"})
    REQUIRE(fs::exists(base / "R/resnet20-synthetic:40/runs-Quant" / run / "checkpoint.mqck"));
  // A bad grid is refused before anything trains.
  for (const char* bad : {"--grid meta", "--grid colour=red", "--grid meta=ste,ste",
                          "--grid meta=ste --grid meta=MultiFC", "--grid bits=0"}) {
    const test::Exit b = test::mqtrain(base, common + " " + bad);
    INFO(bad << ": " << b.output);
    REQUIRE(b.code != 0);
    REQUIRE(test::contains(b.output, "--grid"));
  }
  fs::remove_all(base);
}
