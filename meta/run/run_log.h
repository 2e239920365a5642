#pragma once
// Per-run logs in the reference's layout, Results/<Model>-<Dataset>/runs-Quant/<run>/:
// loss.txt, train-acc.txt, lr.txt ("iter, running mean" per iteration), test-acc.txt (one line
// per epoch), plus metrics.jsonl (one JSON object per epoch) and config.json. The run's
// checkpoint (meta/run/run_checkpoint.h) lives beside them.
//
// Kills at any moment lose nothing a checkpoint covers: the logs are append-only files whose
// lines reach the disk (write + fsync) at the end of every epoch, before that epoch's checkpoint
// is written; a resume cuts each log back to the lines its checkpoint covers through a temporary
// file and an atomic rename, so a resume killed half-way leaves every log whole.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace mq {

// The directory of a run under `root` (--results). A new run claims the first of <run>, <run>-2,
// <run>-3... that does not exist yet by creating it (earlier runs are never overwritten, and two
// runs started at once get two directories); `resume` picks the last of them that exists, and
// errors when there is none. Errors name --results when the directories cannot be created.
std::string claim_run_directory(const std::string& root, const std::string& model,
                                const std::string& dataset, const std::string& run_name,
                                bool resume);

// Removes what killed processes left in a run directory: the temporary files of atomic writes
// (".<name>.tmp.<pid>.<n>"). Only while holding the run's lock (meta/run/run_lock.h).
void remove_stale_temporaries(const std::string& dir);

// One append-only log file: lines are buffered and written by flush(); sync() also fsyncs.
class LogFile {
 public:
  LogFile() = default;
  // Opens `path` for appending after its first `keep` complete lines (0: empty); lines beyond
  // them (an interrupted epoch that the resumed run repeats) are cut through an atomic rewrite.
  LogFile(const std::string& path, int64_t keep);
  LogFile(LogFile&& other) noexcept;
  LogFile& operator=(LogFile&& other) noexcept;
  ~LogFile();
  void append(std::string_view text);
  void flush();
  void sync();

 private:
  std::string path_, buffer_;
  int fd_ = -1;
};

class RunLog {
 public:
  // Writes `config` to <dir>/config.json (atomically) and opens the logs: a new run starts them
  // empty; a resumed run keeps the first `keep_iterations` lines of the per-iteration logs and
  // `keep_epochs` lines of the per-epoch ones (what its checkpoint covers) and appends after them.
  RunLog(const std::string& dir, const nlohmann::json& config, int64_t keep_iterations = 0,
         int keep_epochs = 0);
  void iteration(int64_t iter, double running_loss, double running_acc, double lr);
  // Logs the epoch and makes every log line so far durable (write + fsync): call it before the
  // epoch's checkpoint, so a checkpoint never covers a line that is not on disk.
  void epoch(int epoch, const nlohmann::json& metrics, double test_acc);
  void flush();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  LogFile loss_, acc_, lr_, test_, metrics_;
};

}  // namespace mq
