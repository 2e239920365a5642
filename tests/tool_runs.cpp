#include "tool_runs.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/io/file.h"

extern char** environ;

namespace mq::test {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path fresh_dir(const std::string& prefix, const std::string& name) {
  fs::path d = fs::temp_directory_path() /
               ("mq_test_" + prefix + "_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) { return read_file(p.string(), "test output"); }

std::vector<std::string> split(const std::string& args) {
  std::vector<std::string> out;
  std::istringstream in(args);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string metrics_without_timing(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("images_per_s");
    j.erase("seconds");
    out += j.dump() + "\n";
  }
  return out;
}

pid_t spawn(const std::string& tool, const std::vector<std::string>& args, const fs::path& out) {
  std::vector<std::string> argv{tool};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, tool.c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

Exit wait_for(pid_t pid, const fs::path& out, double kill_after) {
  const auto start = Clock::now();
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, kill_after < 0 ? 0 : WNOHANG);
    if (done == pid) break;
    REQUIRE(done == 0);
    if (std::chrono::duration<double>(Clock::now() - start).count() >= kill_after) {
      kill(pid, SIGKILL);
      REQUIRE(waitpid(pid, &status, 0) == pid);
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  Exit e;
  e.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  e.output = slurp(out);
  return e;
}

Exit mqtrain(const fs::path& dir, const std::vector<std::string>& args) {
  const fs::path out = dir / "output.txt";
  return wait_for(spawn(MQ_MQTRAIN, args, out), out);
}
Exit mqtrain(const fs::path& dir, const std::string& args) { return mqtrain(dir, split(args)); }

Exit mqtrain_faults(const fs::path& dir, const std::string& fault, const std::string& args) {
  const fs::path out = dir / "output.txt";
  std::vector<std::string> argv{fault};
  for (std::string& a : split(args)) argv.push_back(a);
  return wait_for(spawn(MQ_MQTRAIN_FAULTS, argv, out), out);
}

}  // namespace mq::test
