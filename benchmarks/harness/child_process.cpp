#include "benchmarks/harness/child_process.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/format.h>

namespace mq::bench {

std::string run_self(const char* self, const std::vector<std::string>& args,
                     bool without_openblas_kernel) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed\n";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    if (without_openblas_kernel) {
      unsetenv("OPENBLAS_CORETYPE");
      unsetenv("OPENBLAS_L2_SIZE");
    }
    std::vector<char*> argv{const_cast<char*>(self)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(self, argv.data());
    _exit(127);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return "fork failed\n";
  }
  std::string out;
  char buf[4096];
  for (ssize_t got; (got = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(got));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    out += fmt::format("child process failed (status {})\n", status);
  return out;
}

}  // namespace mq::bench
