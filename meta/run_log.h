#pragma once
// Per-run logs in the reference's layout, Results/<Model>-<Dataset>/runs-Quant/<run>/:
// loss.txt, train-acc.txt, lr.txt ("iter, running mean" per iteration), test-acc.txt (one line
// per epoch), plus metrics.jsonl (one JSON object per epoch) and config.json.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace mq {

class RunLog {
 public:
  // Creates the run directory (errors name it); `config` is written to config.json.
  RunLog(const std::string& root, const std::string& model, const std::string& dataset,
         const std::string& run_name, const nlohmann::json& config);
  void iteration(int64_t iter, double running_loss, double running_acc, double lr);
  void epoch(int epoch, const nlohmann::json& metrics, double test_acc);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::ofstream loss_, acc_, lr_, test_, metrics_;
};

}  // namespace mq
