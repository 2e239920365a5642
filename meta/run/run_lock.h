#pragma once
// One process per run directory: an advisory lock (flock) on <run>/run.lock, held for the whole
// run and released by the kernel when the process ends, however it ends (exit, crash, SIGKILL),
// so a killed run never leaves a stale lock behind. The holder writes its pid, host and start
// time into the file; a second run or `--resume` of a busy run reads them back and is refused
// with a message that names the other process. (flock is local: on network file systems that do
// not forward it, two machines are not kept apart.)
#include <string>

namespace mq {

constexpr const char* kRunLockName = "run.lock";

class RunLock {
 public:
  // Locks `dir` (which must exist), or throws mq::Error naming the process that holds it.
  explicit RunLock(const std::string& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// What a lock file says about its holder ("pid 123 on host h, started <UTC time>"), for messages.
std::string describe_lock_holder(const std::string& lock_path);

}  // namespace mq
