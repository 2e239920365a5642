#include "meta/run_log.h"

#include <filesystem>
#include <sstream>

#include "kernels/base/error.h"

namespace mq {
namespace fs = std::filesystem;

namespace {

// Opens a log for appending after its first `keep` lines (0: empty). Lines beyond them come from
// an interrupted epoch that the resumed run repeats.
std::ofstream open_log(const fs::path& p, int64_t keep) {
  std::string kept;
  if (keep > 0) {
    std::ifstream in(p);
    std::string line;
    for (int64_t i = 0; i < keep && std::getline(in, line); ++i) kept += line + "\n";
  }
  std::ofstream f(p, std::ios::trunc);
  MQ_CHECK(f.good(), "cannot write the run log {}: check permissions and free space", p.string());
  f << kept;
  return f;
}

}  // namespace

std::string run_directory(const std::string& root, const std::string& model,
                          const std::string& dataset, const std::string& run_name, bool resume) {
  const fs::path base = fs::path(root) / (model + "-" + dataset) / "runs-Quant";
  auto candidate = [&](int k) {
    return base / (k == 1 ? run_name : run_name + "-" + std::to_string(k));
  };
  int k = 1;
  while (fs::exists(candidate(k))) ++k;
  if (!resume) return candidate(k).string();
  MQ_CHECK(k > 1, "--resume: no earlier run {} to continue; start it without --resume",
           candidate(1).string());
  return candidate(k - 1).string();
}

RunLog::RunLog(const std::string& dir, const nlohmann::json& config, int64_t keep_iterations,
               int keep_epochs) {
  fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  MQ_CHECK(!ec, "cannot create the run directory {}: {}", d.string(), ec.message());
  dir_ = d.string();
  loss_ = open_log(d / "loss.txt", keep_iterations);
  acc_ = open_log(d / "train-acc.txt", keep_iterations);
  lr_ = open_log(d / "lr.txt", keep_iterations);
  test_ = open_log(d / "test-acc.txt", keep_epochs);
  metrics_ = open_log(d / "metrics.jsonl", keep_epochs);
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
  flush();
}

void RunLog::flush() {
  for (std::ofstream* f : {&loss_, &acc_, &lr_, &test_, &metrics_}) {
    f->flush();
    MQ_CHECK(f->good(), "writing the run logs in {} failed: check free space", dir_);
  }
}

}  // namespace mq
