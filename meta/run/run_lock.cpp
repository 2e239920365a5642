#include "meta/run/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "kernels/base/error.h"

namespace mq {
namespace {

std::string holder_line() {
  char host[256] = "?";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  host[sizeof host - 1] = '\0';
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return fmt::format("pid {} on host {}, started {}\n", static_cast<long>(::getpid()), host, when);
}

std::string read_small(int fd) {
  std::string text(512, '\0');
  const ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

std::string describe_lock_holder(const std::string& lock_path) {
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text = read_small(fd);
  ::close(fd);
  return text;
}

RunLock::RunLock(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kRunLockName).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MQ_CHECK(fd_ >= 0, "cannot create the run lock {}: {}; check that the run directory is writable",
           path, std::strerror(errno));
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    std::string holder = err == EWOULDBLOCK ? read_small(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    MQ_CHECK(err == EWOULDBLOCK, "cannot lock the run directory {} ({}): {}", dir, path,
             std::strerror(err));
    fail("the run directory {} is in use by another process ({}); two processes would mix its "
         "logs and checkpoint: wait for that run to end or stop it, then `--resume`",
         dir, holder.empty() ? "it has not written its pid yet" : holder);
  }
  // Ours now: say who holds it. A failure here only makes a later refusal less informative.
  const std::string line = holder_line();
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] ssize_t n = ::pwrite(fd_, line.data(), line.size(), 0);
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace mq
