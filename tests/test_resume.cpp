// Per-epoch checkpoints and --resume of the real mqtrain process: a run killed mid-epoch
// (SIGKILL, no clean-up) and resumed ends bit for bit where the uninterrupted run ends; a
// diverging run keeps its last good checkpoint; mismatched resumes are refused. Faults come from
// mqtrain_faults (tests/tools/mqtrain_faults.cpp: the same command line with a fault hook);
// every other run, resumes included, is the shipped mqtrain.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "meta/run/run_checkpoint.h"
#include "test_data_util.h"
#include "tool_runs.h"

using namespace mq;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) { return test::fresh_dir("resume", name); }

// mqtrain ARGS, or with a `fault` (kill@N, nan@N) mqtrain_faults (tests/tool_runs.h).
test::Exit train(const fs::path& dir, const std::string& args, const std::string& fault = "") {
  return fault.empty() ? test::mqtrain(dir, args) : test::mqtrain_faults(dir, fault, args);
}

fs::path run_dir(const fs::path& results, const std::string& dataset, const std::string& run) {
  return results / ("resnet8-" + dataset) / "runs-Quant" / run;
}

// Every tensor and every reference-layout log equal byte for byte.
void require_same_run(const fs::path& a, const fs::path& b) {
  Checkpoint ca = load_checkpoint((a / kRunCheckpointName).string());
  Checkpoint cb = load_checkpoint((b / kRunCheckpointName).string());
  REQUIRE(ca.tensors.size() == cb.tensors.size());
  for (const auto& [name, ta] : ca.tensors) {
    INFO(name);
    REQUIRE(cb.tensors.count(name));
    const Tensor& tb = cb.tensors.at(name);
    REQUIRE(ta.shape() == tb.shape());
    REQUIRE(ta.dtype() == tb.dtype());
    CHECK(test::same_bytes(ta, tb));
  }
  CHECK(ca.meta["progress"] == cb.meta["progress"]);
  for (const char* log : {"loss.txt", "train-acc.txt", "lr.txt", "test-acc.txt"}) {
    INFO(log);
    CHECK(test::slurp(a / log) == test::slurp(b / log));
  }
}

const std::string kCommon =
    " -m resnet8 -d synthetic:200 -n 3 -bs 32 --threads 1 --device cpu --seed 5 --run r";

}  // namespace

TEST_CASE("mqtrain killed mid-epoch resumes to exactly the uninterrupted run", "[resume][slow]") {
  // 7 batches per epoch: kill@10 stops the process in epoch 2 after its 3rd batch.
  // Under the sanitizers: the one with the most state (LSTM meta net, Adam) only.
  const auto [name, args] = GENERATE(filter(
      [](const std::tuple<std::string, std::string>& c) {
        return !test::kSanitized || std::get<0>(c) == "lstmfc-adam";
      },
      table<std::string, std::string>({
          {"fp-sgdm", "pretrain -lr 0.05 -o SGD-M" + kCommon},
          {"ste-adam", "quantize -meta ste -q dorefa -bw 2 -lr 0.001 -o Adam" + kCommon},
          {"multifc-sgdm",
           "quantize -meta MultiFC -hidden 16 -q dorefa -bw 1 -lr 0.05 -o SGD-M -ad adaptive" + kCommon},
          {"lstmfc-adam", "quantize -meta LSTMFC -hidden 8 -q bwn -lr 0.001 -o Adam" + kCommon},
      })));
  INFO(name << ": mqtrain " << args);
  const fs::path root = fresh_dir(name);
  const fs::path whole = root / "whole", killed = root / "killed";

  test::Exit a = train(root, args + " --results " + whole.string());
  INFO(a.output);
  REQUIRE(a.code == 0);

  test::Exit b = train(root, args + " --results " + killed.string(), "kill@10");
  INFO(b.output);
  REQUIRE(b.signal == SIGKILL);
  const fs::path dir = run_dir(killed, "synthetic:200", "r");
  RunProgress p = read_run_progress((dir / kRunCheckpointName).string());
  CHECK(p.epochs_done == 1);
  CHECK(p.iterations == 7);
  CHECK_FALSE(p.finished);

  test::Exit c = train(root, args + " --results " + killed.string() + " --resume");
  INFO(c.output);
  REQUIRE(c.code == 0);
  CHECK(c.output.find("resuming") != std::string::npos);
  require_same_run(run_dir(whole, "synthetic:200", "r"), dir);

  // Resuming the finished run does no more work; more epochs continue it.
  test::Exit d = train(root, args + " --results " + killed.string() + " --resume");
  CHECK(d.code == 0);
  CHECK(d.output.find("already complete") != std::string::npos);
  fs::remove_all(root);
}

TEST_CASE("mqtrain stops on a NaN loss and keeps the last good checkpoint", "[resume][slow]") {
  const fs::path root = fresh_dir("nan");
  const std::string args = "pretrain -lr 0.05 -o SGD-M" + kCommon + " --results " + root.string();
  test::Exit e = train(root, args, "nan@10");  // weights become NaN in epoch 2
  INFO(e.output);
  CHECK(e.code == 1);
  CHECK(e.output.find("training diverged: loss is nan") != std::string::npos);
  CHECK(e.output.find("last good checkpoint (after epoch 1)") != std::string::npos);
  const fs::path dir = run_dir(root, "synthetic:200", "r");
  const std::string path = (dir / kRunCheckpointName).string();
  RunProgress p = read_run_progress(path);
  CHECK(p.epochs_done == 1);
  Checkpoint ck = load_checkpoint(path);
  for (const auto& [name, t] : ck.tensors) {
    if (t.dtype() != DType::f32) continue;
    const float* v = static_cast<const float*>(t.raw_data());
    bool finite = true;
    for (int64_t i = 0; i < t.numel(); ++i) finite = finite && std::isfinite(v[i]);
    INFO(name);
    CHECK(finite);
  }
  // The kept checkpoint resumes (no fault this time) and finishes.
  test::Exit r = train(root, args + " --resume");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(read_run_progress(path).epochs_done == 3);
  fs::remove_all(root);
}

TEST_CASE("mqtrain --resume refuses other settings and missing runs", "[resume]") {
  const fs::path root = fresh_dir("mismatch");
  const std::string base = " -m resnet8 -d synthetic:64 -n 1 -bs 32 --threads 1 --device cpu "
                           "--run r --results " + root.string();
  test::Exit none = train(root, "pretrain -o SGD" + base + " --resume");
  CHECK(none.code == 1);
  CHECK(none.output.find("no earlier run") != std::string::npos);

  REQUIRE(train(root, "pretrain -o SGD" + base).code == 0);
  test::Exit other = train(root, "pretrain -o Adam" + base + " --resume");
  CHECK(other.code == 1);
  CHECK(other.output.find("optimizer") != std::string::npos);
  CHECK(other.output.find("cannot resume") != std::string::npos);

  // A new run never overwrites an earlier one: it takes the next free directory.
  REQUIRE(train(root, "pretrain -o SGD" + base).code == 0);
  CHECK(fs::exists(run_dir(root, "synthetic:64", "r-2") / kRunCheckpointName));
  fs::remove_all(root);
}
