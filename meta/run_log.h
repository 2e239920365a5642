#pragma once
// Per-run logs in the reference's layout, Results/<Model>-<Dataset>/runs-Quant/<run>/:
// loss.txt, train-acc.txt, lr.txt ("iter, running mean" per iteration), test-acc.txt (one line
// per epoch), plus metrics.jsonl (one JSON object per epoch) and config.json. The run's
// checkpoint (meta/run_checkpoint.h) lives beside them.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace mq {

// The directory of a run under `root`. A new run takes the first of <run>, <run>-2, <run>-3...
// that does not exist yet (earlier runs are never overwritten); `resume` picks the last of them
// that exists, and errors when there is none.
std::string run_directory(const std::string& root, const std::string& model,
                          const std::string& dataset, const std::string& run_name, bool resume);

class RunLog {
 public:
  // Creates `dir` (errors name it) and writes `config` to config.json. A new run starts the logs
  // empty; a resumed run keeps the first `keep_iterations` lines of the per-iteration logs and
  // `keep_epochs` lines of the per-epoch ones (what its checkpoint covers) and appends after them.
  RunLog(const std::string& dir, const nlohmann::json& config, int64_t keep_iterations = 0,
         int keep_epochs = 0);
  void iteration(int64_t iter, double running_loss, double running_acc, double lr);
  void epoch(int epoch, const nlohmann::json& metrics, double test_acc);
  void flush();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::ofstream loss_, acc_, lr_, test_, metrics_;
};

}  // namespace mq
