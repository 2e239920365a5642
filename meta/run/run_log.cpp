#include "meta/run/run_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "kernels/base/error.h"

namespace mq {
namespace fs = std::filesystem;

namespace {

// The reference's number format (an ostream's default: 6 significant digits, %g).
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// The first `keep` complete lines of `text` (a torn last line, cut by a kill, is not one).
size_t prefix_of_lines(const std::string& text, int64_t keep, int64_t* found) {
  size_t end = 0;
  int64_t lines = 0;
  while (lines < keep) {
    const size_t nl = text.find('\n', end);
    if (nl == std::string::npos) break;
    end = nl + 1;
    ++lines;
  }
  *found = lines;
  return end;
}

constexpr size_t kFlushAt = 64 << 10;  // bytes buffered before a write between epochs

}  // namespace

std::string claim_run_directory(const std::string& root, const std::string& model,
                                const std::string& dataset, const std::string& run_name,
                                bool resume) {
  check_plain_name(run_name, "the run directory name (--run)");
  check_plain_name(model + "-" + dataset, "the model and dataset names");
  const fs::path base = fs::path(root) / (model + "-" + dataset) / "runs-Quant";
  auto candidate = [&](int k) {
    return base / (k == 1 ? run_name : run_name + "-" + std::to_string(k));
  };
  constexpr int kMaxRuns = 100000;
  std::error_code ec;
  if (resume) {
    int k = 1;
    while (k <= kMaxRuns && fs::exists(candidate(k), ec)) ++k;
    MQ_CHECK(!ec, "--resume: cannot look at {}: {}", candidate(k).string(), ec.message());
    MQ_CHECK(k > 1, "--resume: no earlier run {} to continue; start it without --resume",
             candidate(1).string());
    return candidate(k - 1).string();
  }
  fs::create_directories(base, ec);
  MQ_CHECK(!ec, "--results {}: cannot create the run directories {}: {}; choose a writable "
           "--results directory", root, base.string(), ec.message());
  // create_directory claims a name atomically: of two runs started at once, one gets <run>, the
  // other <run>-2.
  for (int k = 1; k <= kMaxRuns; ++k) {
    if (fs::create_directory(candidate(k), ec)) return candidate(k).string();
    MQ_CHECK(!ec || ec == std::errc::file_exists, "--results {}: cannot create the run directory "
             "{}: {}", root, candidate(k).string(), ec.message());
  }
  fail("--results {}: {} runs named {} exist already; choose another --run", root, kMaxRuns,
       run_name);
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp.") != std::string::npos &&
        e.is_regular_file(ec))
      fs::remove(e.path(), ec);  // best effort: a leftover only takes space
  }
}

LogFile::LogFile(const std::string& path, int64_t keep) : path_(path) {
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
  if (keep <= 0) {
    flags |= O_TRUNC;  // no line is covered by a checkpoint
  } else {
    std::error_code ec;
    const std::string text = fs::exists(path, ec) ? read_file(path, "run log") : "";
    int64_t found = 0;
    const size_t end = prefix_of_lines(text, keep, &found);
    if (found < keep)
      std::fprintf(stderr, "mqtrain: warning: %s has %" PRId64 " of the %" PRId64
                   " lines its checkpoint covers; the resumed log lacks the others\n",
                   path.c_str(), found, keep);
    // The cut goes through a temporary file and a rename: a kill during it leaves the old log.
    if (end != text.size()) write_file_atomic(path, text.substr(0, end));
  }
  fd_ = ::open(path.c_str(), flags, 0644);
  MQ_CHECK(fd_ >= 0, "cannot write the run log {}: {}; check permissions and free space", path,
           std::strerror(errno));
}

LogFile::LogFile(LogFile&& other) noexcept
    : path_(std::move(other.path_)), buffer_(std::move(other.buffer_)), fd_(other.fd_) {
  other.fd_ = -1;
}

LogFile& LogFile::operator=(LogFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    buffer_ = std::move(other.buffer_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

LogFile::~LogFile() {
  if (fd_ < 0) return;
  try {
    flush();
  } catch (const Error&) {
    // already reported by the run's own flush, or the run is failing for another reason
  }
  ::close(fd_);
}

void LogFile::append(std::string_view text) {
  buffer_ += text;
  if (buffer_.size() >= kFlushAt) flush();
}

void LogFile::flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t w = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = errno;
      buffer_.erase(0, done);
      fail("writing the run log {} failed: {}; check free space", path_, std::strerror(err));
    }
    done += static_cast<size_t>(w);
  }
  buffer_.clear();
}

void LogFile::sync() {
  flush();
  MQ_CHECK(::fsync(fd_) == 0, "writing the run log {} failed (fsync): {}; check free space",
           path_, std::strerror(errno));
}

RunLog::RunLog(const std::string& dir, const nlohmann::json& config, int64_t keep_iterations,
               int keep_epochs) {
  fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  MQ_CHECK(!ec, "cannot create the run directory {}: {}", d.string(), ec.message());
  dir_ = d.string();
  loss_ = LogFile((d / "loss.txt").string(), keep_iterations);
  acc_ = LogFile((d / "train-acc.txt").string(), keep_iterations);
  lr_ = LogFile((d / "lr.txt").string(), keep_iterations);
  test_ = LogFile((d / "test-acc.txt").string(), keep_epochs);
  metrics_ = LogFile((d / "metrics.jsonl").string(), keep_epochs);
  write_file_atomic((d / "config.json").string(), config.dump(2) + "\n");
}

void RunLog::iteration(int64_t iter, double running_loss, double running_acc, double lr) {
  const std::string it = std::to_string(iter) + ", ";
  loss_.append(it + number(running_loss) + "\n");
  acc_.append(it + number(running_acc) + "\n");
  lr_.append(it + number(lr) + "\n");
}

void RunLog::epoch(int epoch, const nlohmann::json& metrics, double test_acc) {
  test_.append(std::to_string(epoch) + ", " + number(test_acc) + "\n");
  metrics_.append(metrics.dump() + "\n");
  for (LogFile* f : {&loss_, &acc_, &lr_, &test_, &metrics_}) f->sync();
}

void RunLog::flush() {
  for (LogFile* f : {&loss_, &acc_, &lr_, &test_, &metrics_}) f->flush();
}

}  // namespace mq
