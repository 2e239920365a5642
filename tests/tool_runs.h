#pragma once
// Running mq's command-line tools from the tests: a fresh scratch directory, argv without a
// shell, stdout and stderr captured to a file, exit status or signal, an optional SIGKILL from
// outside after a time. Shared by the run, resume and hostile-input tests.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace mq::test {

// <tmp>/mq_test_<prefix>_<name>_<pid>, empty.
std::filesystem::path fresh_dir(const std::string& prefix, const std::string& name);
std::string slurp(const std::filesystem::path& p);  // a whole file
std::vector<std::string> split(const std::string& args);  // on whitespace, no quoting
bool contains(const std::string& text, const std::string& part);
// The text of a metrics.jsonl without its timings (images/s, seconds), which no two runs share.
std::string metrics_without_timing(const std::string& text);

struct Exit {
  int code = -1;   // exit status when it exited
  int signal = 0;  // the signal that ended it, if any
  double seconds = 0;
  std::string output;  // stdout and stderr
};

// Starts `tool` with `args` (argv as given, no shell), stdout and stderr into `out`.
pid_t spawn(const std::string& tool, const std::vector<std::string>& args,
            const std::filesystem::path& out);
// Waits for `pid`; SIGKILLs it from outside once `kill_after` seconds have passed (< 0: never).
Exit wait_for(pid_t pid, const std::filesystem::path& out, double kill_after = -1);

// mqtrain ARGS, output in dir/output.txt.
Exit mqtrain(const std::filesystem::path& dir, const std::vector<std::string>& args);
Exit mqtrain(const std::filesystem::path& dir, const std::string& args);
// mqtrain_faults FAULT ARGS... (tests/tools/mqtrain_faults.cpp: kill@N, nan@N).
Exit mqtrain_faults(const std::filesystem::path& dir, const std::string& fault,
                    const std::string& args);

}  // namespace mq::test
