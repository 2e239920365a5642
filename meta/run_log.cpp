#include "meta/run_log.h"

#include <filesystem>

#include "engine/error.h"

namespace mq {
namespace fs = std::filesystem;

namespace {
std::ofstream open_log(const fs::path& p) {
  std::ofstream f(p, std::ios::app);
  MQ_CHECK(f.good(), "cannot write the run log {}: check permissions and free space", p.string());
  return f;
}
}  // namespace

RunLog::RunLog(const std::string& root, const std::string& model, const std::string& dataset,
               const std::string& run_name, const nlohmann::json& config) {
  fs::path d = fs::path(root) / (model + "-" + dataset) / "runs-Quant" / run_name;
  std::error_code ec;
  fs::create_directories(d, ec);
  MQ_CHECK(!ec, "cannot create the run directory {}: {}", d.string(), ec.message());
  dir_ = d.string();
  loss_ = open_log(d / "loss.txt");
  acc_ = open_log(d / "train-acc.txt");
  lr_ = open_log(d / "lr.txt");
  test_ = open_log(d / "test-acc.txt");
  metrics_ = open_log(d / "metrics.jsonl");
  std::ofstream(d / "config.json") << config.dump(2) << "\n";
}

void RunLog::iteration(int64_t iter, double running_loss, double running_acc, double lr) {
  loss_ << iter << ", " << running_loss << "\n";
  acc_ << iter << ", " << running_acc << "\n";
  lr_ << iter << ", " << lr << "\n";
}

void RunLog::epoch(int epoch, const nlohmann::json& metrics, double test_acc) {
  test_ << epoch << ", " << test_acc << "\n";
  metrics_ << metrics.dump() << "\n";
  loss_.flush();
  acc_.flush();
  lr_.flush();
  test_.flush();
  metrics_.flush();
}

}  // namespace mq
