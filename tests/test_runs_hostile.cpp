// Training runs as a hostile world treats them: a second process on a busy run, names and paths
// that would write elsewhere or fail after hours of training, absurd flags, exceptions that are
// not mq::Error, and SIGKILL at any moment (in the middle of log lines, checkpoints and saves,
// and of a resume itself), after which `--resume` must end byte-identical to the uninterrupted
// run. The processes are the shipped mqtrain and its fault-injecting twin mqtrain_faults
// (tests/tools/mqtrain_faults.cpp), started with posix_spawn and killed from outside.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "meta/run/run_checkpoint.h"
#include "meta/run/run_lock.h"
#include "meta/run/run_log.h"
#include "meta/run/training_run.h"
#include "data/synthetic.h"
#include "dataset_writers.h"
#include "test_data_util.h"
#include "tool_runs.h"

using namespace mq;
using namespace mq::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

fs::path fresh_dir(const std::string& name) { return test::fresh_dir("runs", name); }

fs::path run_dir(const fs::path& results, const std::string& dataset, const std::string& run) {
  return results / ("resnet8-" + dataset) / "runs-Quant" / run;
}

const std::string kQuick =
    " -m resnet8 -d synthetic:64 -bs 32 --threads 1 --device cpu --seed 2";

// Holds the lock of a run directory from this process, as another mqtrain would.
struct HeldLock {
  int fd = -1;
  explicit HeldLock(const fs::path& dir) {
    fd = ::open((dir / kRunLockName).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    const std::string line = "pid " + std::to_string(getpid()) + " on host test-host, started now\n";
    REQUIRE(::ftruncate(fd, 0) == 0);
    REQUIRE(::pwrite(fd, line.data(), line.size(), 0) == ssize_t(line.size()));
  }
  ~HeldLock() { ::close(fd); }
};

}  // namespace

TEST_CASE("runs: a busy run is refused, naming the process that holds its lock", "[runs]") {
  const fs::path root = fresh_dir("busy");
  const std::string args = "pretrain -n 1" + kQuick + " --run r --results " + root.string();
  REQUIRE(mqtrain(root, args).code == 0);
  const fs::path dir = run_dir(root, "synthetic:64", "r");
  const std::string me = "pid " + std::to_string(getpid());
  {
    HeldLock held(dir);
    Exit busy = mqtrain(root, args + " --resume");
    INFO(busy.output);
    CHECK(busy.code == 1);
    CHECK(contains(busy.output, "mqtrain: error: the run directory " + dir.string() + " is in use"));
    CHECK(contains(busy.output, me + " on host test-host"));
    CHECK_FALSE(contains(busy.output, "already complete"));
  }
  // Released (as the kernel releases it when a holder dies): the resume goes ahead.
  Exit after = mqtrain(root, args + " --resume");
  INFO(after.output);
  CHECK(after.code == 0);
  CHECK(contains(after.output, "already complete"));
  // The holder's line names the last mqtrain that held it.
  CHECK(contains(slurp(dir / kRunLockName), "pid "));

  // Two real processes: while one mqtrain trains, a --resume of its run is refused, naming it.
  {
    const fs::path out = root / "long.txt";
    const pid_t first = spawn(MQ_MQTRAIN, split("pretrain -n 500" + kQuick + " --run long --results " +
                                                root.string()), out);
    const fs::path lock = run_dir(root, "synthetic:64", "long") / kRunLockName;
    const std::string holder = "pid " + std::to_string(first) + " on host ";
    const auto start = Clock::now();
    while (!(fs::exists(lock) && contains(slurp(lock), holder)) &&
           Clock::now() - start < std::chrono::seconds(60))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    Exit second = mqtrain(root, "pretrain -n 500" + kQuick + " --run long --resume --results " +
                                    root.string());
    kill(first, SIGKILL);
    Exit killed = wait_for(first, out);
    INFO(second.output);
    CHECK(second.code == 1);
    CHECK(contains(second.output, "is in use by another process (" + holder));
    CHECK(killed.signal == SIGKILL);  // it was still running: the refusal was the lock's
  }

  // --trials: one lock per trial's directory; a busy second trial is refused by name.
  const std::string trials = "pretrain -n 1 --trials 2" + kQuick + " --run t --results " + root.string();
  REQUIRE(mqtrain(root, trials).code == 0);
  {
    HeldLock held(run_dir(root, "synthetic:64", "t-trial1"));
    Exit busy = mqtrain(root, trials + " --resume");
    INFO(busy.output);
    CHECK(busy.code == 1);
    CHECK(contains(busy.output, "t-trial1 is in use"));
    CHECK(contains(busy.output, me));
  }
  fs::remove_all(root);
}

TEST_CASE("runs: the run lock in-process, and two new runs of one name get two directories",
          "[runs]") {
  const fs::path root = fresh_dir("lock");
  const std::string a = claim_run_directory(root.string(), "resnet8", "synthetic", "r", false);
  const std::string b = claim_run_directory(root.string(), "resnet8", "synthetic", "r", false);
  CHECK(a != b);
  CHECK(fs::path(b).filename() == "r-2");
  CHECK(claim_run_directory(root.string(), "resnet8", "synthetic", "r", true) == b);
  {
    RunLock lock(a);
    // A second descriptor is a second holder, even in one process (flock is per open file).
    CHECK_THROWS_WITH(RunLock(a), Catch::Contains("is in use by another process") &&
                                      Catch::Contains("pid " + std::to_string(getpid())));
    RunLock other(b);  // another run directory is another lock
  }
  RunLock again(a);  // released with its holder
  fs::remove_all(root);
}

TEST_CASE("runs: --run must be a plain name", "[runs]") {
  const fs::path root = fresh_dir("name");
  const fs::path results = root / "results";
  for (const std::string name : {"../x", "a/b", "..", "/tmp/abs"}) {
    INFO(name);
    Exit e = mqtrain(root, split("pretrain -n 1" + kQuick + " --results " + results.string() +
                                 " --run " + name));
    INFO(e.output);
    CHECK(e.code == 1);
    CHECK(contains(e.output, "mqtrain: error: --run"));
    CHECK(contains(e.output, "not a plain name"));
  }
  std::vector<std::string> empty = split("pretrain -n 1" + kQuick + " --results " + results.string());
  empty.push_back("--run");
  empty.push_back("");
  Exit e = mqtrain(root, empty);
  INFO(e.output);
  CHECK(e.code == 1);
  CHECK(contains(e.output, "--run is empty"));
  // Nothing was written anywhere: not beside the results, not in them.
  CHECK_FALSE(fs::exists(results / "resnet8-synthetic:64" / "x"));
  CHECK_FALSE(fs::exists(results / "resnet8-synthetic:64" / "runs-Quant" / "a"));
  CHECK_FALSE(fs::exists(results));

  RunSettings s;
  s.run_name = "a/b";
  CHECK_THROWS_WITH(validate_run_settings(s), Catch::Contains("--run 'a/b' is not a plain name"));
  CHECK_THROWS_WITH(claim_run_directory(root.string(), "resnet8", "synthetic", "../x", false),
                    Catch::Contains("not a plain name"));
  fs::remove_all(root);
}

TEST_CASE("runs: --save and --results that cannot be written are refused before training",
          "[runs]") {
  const fs::path root = fresh_dir("save");
  const fs::path file = root / "a-file";
  { std::ofstream(file) << "not a directory\n"; }
  // 2,000 epochs: a check after training would take minutes; the refusal must come at once.
  const std::string args = "pretrain -n 2000" + kQuick + " --run r";
  const std::string results = " --results " + (root / "results").string();
  for (const auto& [flag, target] :
       std::vector<std::pair<std::string, fs::path>>{{"--save", file},
                                                     {"--save", file / "sub"},
                                                     {"--results", file},
                                                     {"--results", file / "sub"}}) {
    INFO(flag << " " << target);
    Exit e = mqtrain(root, args + (flag == "--save" ? results : "") + " " + flag + " " +
                               target.string());
    INFO(e.output);
    CHECK(e.code == 1);
    CHECK(contains(e.output, "mqtrain: error: " + flag + " " + target.string()));
    CHECK(contains(e.output, "not a directory"));
    CHECK(e.seconds < 5);
    CHECK_FALSE(contains(e.output, "epoch 1/"));
    CHECK(slurp(file) == "not a directory\n");
  }
  CHECK_FALSE(fs::exists(root / "results"));

  // In-process: the checks alone; an existing directory is fine (the save replaces it), so is a
  // new one under directories still to be created.
  RunSettings s;
  s.results = (root / "results").string();
  s.save_dir = file.string();
  CHECK_THROWS_WITH(check_run_paths(s), Catch::Contains("--save " + file.string()));
  s.save_dir = root.string();
  CHECK_NOTHROW(check_run_paths(s));
  s.save_dir = (root / "new" / "deeper" / "model").string();
  CHECK_NOTHROW(check_run_paths(s));
  CHECK_FALSE(fs::exists(root / "new"));  // checked, not created
  s.pretrained = (root / "missing.pth").string();
  CHECK_THROWS_WITH(check_run_paths(s), Catch::Contains("--pretrained") &&
                                            Catch::Contains("no such file or directory"));
  // The probe leaves nothing behind.
  for (const auto& entry : fs::directory_iterator(root))
    CHECK(entry.path().filename().string().find("probe") == std::string::npos);
  fs::remove_all(root);
}

TEST_CASE("runs: --train-subset larger than the training set is refused", "[runs]") {
  const fs::path root = fresh_dir("subset");
  Exit e = mqtrain(root, "pretrain -n 1" + kQuick + " --train-subset 65 --run r --results " +
                             root.string());
  INFO(e.output);
  CHECK(e.code == 1);
  CHECK(contains(e.output, "mqtrain: error: --train-subset 65"));
  CHECK(contains(e.output, "only 64 images"));
  CHECK_FALSE(fs::exists(run_dir(root, "synthetic:64", "r")));  // refused before the run began
  fs::remove_all(root);
}

TEST_CASE("runs: model and dataset names are case-insensitive, as the reference spells them",
          "[runs]") {
  const fs::path root = fresh_dir("names");
  Exit e = mqtrain(root, "pretrain -m ResNet8 -d Synthetic:64 -n 1 -bs 32 --device cpu "
                         "--threads 1 --run r --results " + root.string());
  INFO(e.output);
  CHECK(e.code == 0);
  CHECK(fs::exists(run_dir(root, "synthetic:64", "r") / "loss.txt"));  // filed under lower case
  Exit bad = mqtrain(root, "pretrain -m ResNet21 -d synthetic:64 -n 1 --device cpu --results " +
                               root.string());
  CHECK(bad.code == 1);
  CHECK(contains(bad.output, "--model 'resnet21': not a model of the zoo; choose one of"));
  CHECK(contains(bad.output, "resnet8, resnet20, resnet32"));
  fs::remove_all(root);
}

TEST_CASE("runs: exceptions that are not mq::Error end in a message and exit status 1",
          "[runs]") {
  const fs::path root = fresh_dir("throw");
  const std::string args = "pretrain -n 1" + kQuick + " --run r --results " + root.string();
  const std::map<std::string, std::string> expected = {
      {"throw-std", "injected std::runtime_error"},
      {"throw-fs", "/injected/path"},
      {"throw-json", "malformed JSON"},
      {"throw-alloc", "out of memory"},
      {"throw-other", "unexpected failure"}};
  for (const auto& [kind, message] : expected) {
    INFO(kind);
    Exit e = mqtrain_faults(root, kind + "@1", args);
    INFO(e.output);
    CHECK(e.signal == 0);
    CHECK(e.code == 1);
    CHECK(contains(e.output, "mqtrain: error: "));
    CHECK(contains(e.output, message));
    CHECK_FALSE(contains(e.output, "terminate called"));
  }
  fs::remove_all(root);
}

TEST_CASE("runs: absurd flags get an error naming the flag, never a crash", "[runs]") {
  const fs::path root = fresh_dir("flags");
  // Each flag once (a second -m would be refused for being twice, whatever its value).
  const std::string base = " -d synthetic:64 --device cpu --threads 1 --results " + root.string() + " ";
  const std::string long_name(5000, 'x');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"pretrain" + base + "--lr nan", "--lr nan: expected a positive finite number"},
      {"pretrain" + base + "--lr inf", "--lr inf: expected a positive finite number"},
      {"pretrain" + base + "--lr -1", "--lr -1: expected a positive finite number"},
      {"pretrain" + base + "--lr 0", "--lr 0: expected a positive finite number"},
      {"pretrain" + base + "-n 0", "--epochs"},
      {"pretrain" + base + "-n 99999999999", "--epochs"},
      {"pretrain" + base + "-bs 0", "--batch-size"},
      {"pretrain" + base + "-bs 100000000", "--batch-size"},
      {"pretrain" + base + "--seed -1", "--seed"},
      {"pretrain" + base + "--trials 0", "--trials"},
      {"pretrain" + base + "--train-subset -5", "--train-subset"},
      {"pretrain" + base + "-o Sgd2", "--optimizer"},
      {"pretrain" + base + "-ad 0", "--lr-adjust"},
      {"pretrain" + base + "-ad 1e99", "--lr-adjust"},
      {"pretrain" + base + "-m resnet99999998", "--model 'resnet99999998'"},
      {"pretrain" + base + "-m resnet7", "--model 'resnet7'"},
      {"pretrain" + base + "-m vgg", "--model 'vgg'"},
      {"pretrain -d nope --device cpu --results " + root.string(), "--dataset: unknown dataset 'nope'"},
      {"pretrain -d synthetic:64 --device tpu --results " + root.string(), "--device 'tpu'"},
      {"pretrain" + base + "--run " + long_name, "is 5000 bytes long"},
      {"quantize" + base + "-meta MultiFC -hidden 100000", "--hidden"},
      {"quantize" + base + "-meta MultiFC -nfc 1000", "--nfc"},
      {"quantize" + base + "-meta nope", "--backward"},
      {"quantize" + base + "-q dorefa -bw 99", "--bits"},
      {"eval -d synthetic:64 --device cpu --pretrained " + (root / "none").string(),
       "--pretrained"},
      // Too big to hold: refused by the data or out of memory, in a message either way.
      {"pretrain -d synthetic:99999999999999999 --device cpu --results " + root.string(),
       "mqtrain: error: "},
  };
  for (const auto& [args, flag] : cases) {
    INFO(args.substr(0, 300));
    Exit e = mqtrain(root, args);
    INFO(e.output.substr(0, 2000));
    CHECK(e.signal == 0);
    CHECK(e.code != 0);
    CHECK(e.code < 128);
    CHECK(contains(e.output, flag));
    CHECK_FALSE(contains(e.output, "epoch 1/"));
    CHECK(e.seconds < 10);
  }
  CHECK_FALSE(fs::exists(root / "resnet8-synthetic:64"));  // no run began
  fs::remove_all(root);
}

TEST_CASE("run log: a resume killed right after opening its logs keeps every covered line",
          "[runs]") {
  const fs::path dir = fresh_dir("log");
  // An interrupted run: 3 covered iteration lines, then 2 of an unfinished epoch, the last torn.
  const std::string covered = "0, 2.3\n1, 2.2\n2, 2.1\n";
  for (const char* name : {"loss.txt", "train-acc.txt", "lr.txt"})
    std::ofstream(dir / name) << covered << "3, 2.0\n4, 1.";
  for (const char* name : {"test-acc.txt", "metrics.jsonl"}) std::ofstream(dir / name) << "0, 10\n";
  // The resume opens its logs and dies at once (no destructor, no flush), as under SIGKILL.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      RunLog log(dir.string(), {{"k", 1}}, 3, 1);
      _exit(0);
    } catch (...) {
      _exit(3);
    }
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  for (const char* name : {"loss.txt", "train-acc.txt", "lr.txt"}) {
    INFO(name);
    CHECK(slurp(dir / name) == covered);
  }
  CHECK(slurp(dir / "test-acc.txt") == "0, 10\n");
  CHECK(nlohmann::json::parse(slurp(dir / "config.json"))["k"] == 1);

  // Appends go after the covered lines; epoch() makes them durable before a checkpoint.
  {
    RunLog log(dir.string(), {{"k", 1}}, 3, 1);
    log.iteration(3, 2.0, 50.0, 0.001);
    log.epoch(1, {{"epoch", 2}}, 12.5);
    CHECK(slurp(dir / "loss.txt") == covered + "3, 2\n");
    CHECK(slurp(dir / "lr.txt") == covered + "3, 0.001\n");
    CHECK(slurp(dir / "test-acc.txt") == "0, 10\n1, 12.5\n");
    CHECK(slurp(dir / "metrics.jsonl") == "0, 10\n{\"epoch\":2}\n");
  }
  fs::remove_all(dir);
}

namespace {

// The logs' lines covered by the checkpoint in `dir` now (what a kill must never lose).
struct Covered {
  int64_t iterations = 0;
  int epochs = 0;
  std::map<std::string, std::string> logs;  // name -> the covered prefix
};

std::string first_lines(const std::string& text, int64_t n) {
  size_t end = 0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t nl = text.find('\n', end);
    if (nl == std::string::npos) return text;  // fewer lines: the comparison fails
    end = nl + 1;
  }
  return text.substr(0, end);
}

const char* const kIterationLogs[] = {"loss.txt", "train-acc.txt", "lr.txt"};
const char* const kEpochLogs[] = {"test-acc.txt", "metrics.jsonl"};

Covered covered_now(const fs::path& dir) {
  Covered c;
  const fs::path ck = dir / kRunCheckpointName;
  if (!fs::exists(ck)) return c;
  const RunProgress p = read_run_progress(ck.string());
  c.iterations = p.iterations;
  c.epochs = p.epochs_done;
  for (const char* log : kIterationLogs) c.logs[log] = first_lines(slurp(dir / log), c.iterations);
  for (const char* log : kEpochLogs) c.logs[log] = first_lines(slurp(dir / log), c.epochs);
  return c;
}

std::map<std::string, std::string> files_in(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out[e.path().filename().string()] = slurp(e.path());
  return out;
}

// The finished run in `dir` (saved model in `saved`) equals the uninterrupted one, byte for byte.
void require_same_as_whole(const fs::path& whole, const fs::path& whole_saved, const fs::path& dir,
                           const fs::path& saved) {
  const std::string a = slurp(whole / kRunCheckpointName), b = slurp(dir / kRunCheckpointName);
  Checkpoint ca = decode_checkpoint(a, "whole"), cb = decode_checkpoint(b, "resumed");
  CHECK(ca.meta["progress"] == cb.meta["progress"]);
  REQUIRE(ca.tensors.size() == cb.tensors.size());
  for (const auto& [name, ta] : ca.tensors) {
    INFO(name);
    REQUIRE(cb.tensors.count(name));
    const Tensor& tb = cb.tensors.at(name);
    REQUIRE(ta.shape() == tb.shape());
    REQUIRE(ta.nbytes() == tb.nbytes());
    CHECK((ta.nbytes() == 0 || std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()) == 0));
  }
  for (const char* log : {"loss.txt", "train-acc.txt", "lr.txt", "test-acc.txt", "config.json"}) {
    INFO(log);
    CHECK(slurp(whole / log) == slurp(dir / log));
  }
  CHECK(metrics_without_timing(slurp(whole / "metrics.jsonl")) ==
        metrics_without_timing(slurp(dir / "metrics.jsonl")));
  // Nothing a killed process left behind (temporary files) remains.
  for (const auto& e : fs::directory_iterator(dir))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
  const auto model_a = files_in(whole_saved), model_b = files_in(saved);
  CHECK(model_a.size() == model_b.size());
  for (const auto& [name, bytes] : model_a) {
    INFO("saved " << name);
    CHECK((model_b.count(name) && model_b.at(name) == bytes));
  }
}

uint64_t kill_seed() {
  if (const char* s = std::getenv("MQ_KILL_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

}  // namespace

TEST_CASE("runs: killed at 20 random moments, each run resumes byte-identical to the "
          "uninterrupted one", "[runs][slow]") {
  const uint64_t seed = kill_seed();
  std::printf("kill/resume test: seed %llu (MQ_KILL_SEED=%llu repeats it)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  INFO("MQ_KILL_SEED=" << seed);
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<>(lo, hi)(rng); };
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };

  const fs::path root = fresh_dir("kills");
  // MetaQuant (meta network, Adam and its moments in the checkpoint) on 96 images: 3 steps and
  // a test pass per epoch, 3 epochs.
  const std::string settings =
      "quantize -meta MultiFC -hidden 8 -q dorefa -bw 1 -lr 0.01 -o Adam -m resnet8 "
      "-d synthetic:96 -n 3 -bs 32 --threads 1 --device cpu --seed 3 --run r";
  auto args_for = [&](const fs::path& results) {
    return settings + " --results " + results.string() + " --save " + (results / "saved").string();
  };
  const fs::path whole = root / "whole";
  fs::create_directories(whole);
  Exit ref = mqtrain(whole, args_for(whole));
  INFO(ref.output);
  REQUIRE(ref.code == 0);
  const double run_seconds = ref.seconds;
  const fs::path whole_dir = run_dir(whole, "synthetic:96", "r");

  // How many write(2) and fsync(2) calls a whole run makes: the range of the in-write kills.
  const fs::path counted = root / "counted";
  fs::create_directories(counted);
  Exit count = mqtrain_faults(counted, "count@0", args_for(counted));
  INFO(count.output);
  REQUIRE(count.code == 0);
  long long writes = 0, syncs = 0;
  const size_t at = count.output.find("mqtrain_faults: ");
  REQUIRE(at != std::string::npos);
  REQUIRE(std::sscanf(count.output.c_str() + at, "mqtrain_faults: %lld writes, %lld syncs",
                      &writes, &syncs) == 2);
  REQUIRE(writes > 10);
  REQUIRE(syncs > 5);
  std::printf("kill/resume test: a whole run takes %.2f s, %lld writes, %lld fsyncs\n",
              run_seconds, writes, syncs);

  // Under the sanitizers (~10x slower) 5 of the 20 moments: every kind of kill still occurs
  // (a random time, in a write, at an fsync, and a killed resume).
  const int moments = test::kSanitized ? 5 : 20;
  int killed = 0, resumes_killed = 0, before_first_checkpoint = 0;
  for (int i = 0; i < moments; ++i) {
    const fs::path results = root / ("kill" + std::to_string(i));
    fs::create_directories(results);
    const std::string args = args_for(results);
    const fs::path dir = run_dir(results, "synthetic:96", "r");
    // The moment: a random time, or the middle of a random write, or a random fsync.
    std::string moment;
    Exit first;
    if (i % 3 == 0) {
      const double t = uniform(0.0, run_seconds);
      moment = "SIGKILL after " + std::to_string(t) + " s";
      const fs::path out = results / "output.txt";
      first = wait_for(spawn(MQ_MQTRAIN, split(args), out), out, t);
    } else {
      // Every write of the logs, config and checkpoints is fsynced, and the saved model's
      // tensors come last: the first `syncs` writes are mostly those of training, which every
      // other in-write kill aims at; the others may land anywhere, the save included.
      const int64_t last_write = i % 6 == 1 ? std::min<int64_t>(syncs, writes) : writes;
      moment = i % 3 == 1 ? "kill-in-write@" + std::to_string(pick(1, last_write))
                          : "kill-at-sync@" + std::to_string(pick(1, syncs));
      first = mqtrain_faults(results, moment, args);
      CHECK(first.signal == SIGKILL);  // the fault always fires within a whole run
    }
    INFO("kill " << i << ": " << moment);
    INFO(first.output);
    killed += first.signal == SIGKILL;
    before_first_checkpoint += first.signal == SIGKILL && !fs::exists(dir / kRunCheckpointName);

    // Resume until the run completes; every other run's first resume is killed as well, at a
    // random time or in one of its first writes (the logs' cut).
    bool done = first.code == 0;
    for (int attempt = 1; !done && attempt <= 6; ++attempt) {
      const Covered before = covered_now(dir);
      // Killed before it claimed its directory, the run is started again as the refusal of
      // --resume says (tests/test_resume.cpp: --resume of no earlier run is an error).
      const std::string again = args + (fs::exists(dir) ? " --resume" : "");
      Exit r;
      std::string how = "resume";
      if (attempt == 1 && i % 2 == 1) {
        if (i % 4 == 1) {
          const double t = uniform(0.0, run_seconds);
          how = fmt::format("resume, SIGKILL after {} s", t);
          const fs::path out = results / "output.txt";
          r = wait_for(spawn(MQ_MQTRAIN, split(again), out), out, t);
        } else {
          how = fmt::format("resume, kill-in-write@{}", pick(1, 8));
          r = mqtrain_faults(results, how.substr(8), again);
        }
        resumes_killed += r.signal == SIGKILL;
      } else {
        r = mqtrain(results, again);
        CHECK(r.code == 0);
      }
      INFO("attempt " << attempt << ": " << how);
      INFO(r.output);
      CHECK((r.code == 0 || r.signal == SIGKILL));
      done = r.code == 0;
      // What the checkpoint covered before this attempt is still there, byte for byte.
      if (fs::exists(dir)) {
        const Covered after = covered_now(dir);
        CHECK(after.epochs >= before.epochs);
        for (const auto& [log, prefix] : before.logs) {
          INFO(log);
          CHECK(slurp(dir / log).substr(0, prefix.size()) == prefix);
        }
      }
    }
    REQUIRE(done);
    require_same_as_whole(whole_dir, whole / "saved", dir, results / "saved");
    fs::remove_all(results);
  }
  std::printf("kill/resume test: %d of %d runs killed (%d before their first checkpoint), %d "
              "resumes killed; all %d resumed byte-identical\n",
              killed, moments, before_first_checkpoint, resumes_killed, moments);
  // The fault kills (i % 3 != 0) always land; a random time may come after the end. So do the
  // in-write kills of the first resume after a fault kill (i % 4 == 3, i % 3 != 0).
  int fault_kills = 0, resume_fault_kills = 0;
  for (int i = 0; i < moments; ++i) {
    fault_kills += i % 3 != 0;
    resume_fault_kills += i % 3 != 0 && i % 4 == 3;
  }
  CHECK(killed >= fault_kills);
  CHECK(resumes_killed >= resume_fault_kills);
  fs::remove_all(root);
}

TEST_CASE("runs: the reference's commands run as written: default data directory, pretrain's "
          "default save, quantize's default pretrained state", "[runs]") {
  const fs::path root = fresh_dir("reference");
  const fs::path data = root / "data";
  REQUIRE(setenv("MQ_DATA", data.c_str(), 1) == 0);  // the spawned mqtrain inherits it
  const std::string common = " -n 1 --device cpu --threads 1 --results " + root.string();

  // No data there yet: the message names the default directory, how to set it and to fill it.
  Exit none = mqtrain(root, "pretrain -m ResNet20 -d CIFAR10" + common);
  INFO(none.output);
  CHECK(none.code == 1);
  CHECK(contains(none.output, (data / "cifar10").string()));
  CHECK(contains(none.output, "scripts/get-cifar.sh 10"));
  CHECK(contains(none.output, "no --data given"));

  // A small CIFAR-10 in the default directory (5 training batches and the test batch).
  fs::create_directories(data / "cifar10");
  for (int b = 1; b <= 6; ++b) {
    SyntheticOptions o;
    o.count = 8;
    o.seed = b;
    const std::string file = b <= 5 ? "data_batch_" + std::to_string(b) + ".bin" : "test_batch.bin";
    test::write_cifar_file((data / "cifar10" / file).string(), make_synthetic(o),
                           CifarVariant::cifar10);
  }
  Exit pre = mqtrain(root, "pretrain -m ResNet20 -d CIFAR10" + common);
  INFO(pre.output);
  REQUIRE(pre.code == 0);
  const fs::path saved = root / "resnet20-cifar10" / "resnet20-cifar10-pretrain";
  CHECK(fs::exists(saved / "conv1.weight.npy"));

  // The reference README's quantize command (with one epoch): it starts from pretrain's state.
  Exit q = mqtrain(root, "quantize -m ResNet20 -d CIFAR10 -q dorefa -bw 1 -o SGD -meta MultiFC "
                         "-hidden 100 -ad 30" + common);
  INFO(q.output);
  CHECK(q.code == 0);
  CHECK(contains(q.output, "no --pretrained: starting from " + saved.string()));
  REQUIRE(unsetenv("MQ_DATA") == 0);
  fs::remove_all(root);
}
