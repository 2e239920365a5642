// mqtrain_faults: mqtrain with a fault injected, for the resume tests (tests/test_resume.cpp,
// tests/test_runs_hostile.cpp). Built only with the tests; the shipped mqtrain has no fault code.
//
//   mqtrain_faults kill@N ARGS...          mqtrain ARGS..., SIGKILL to itself once N training
//                                          iterations are done (no clean-up, like a crash)
//   mqtrain_faults nan@N ARGS...           mqtrain ARGS..., the weights turned into NaN there
//                                          (a diverging run)
//   mqtrain_faults kill-in-write@K ARGS... the K-th write(2) of the process writes half its
//                                          bytes, then SIGKILL: a kill in the middle of a log
//                                          line, a checkpoint or a saved tensor
//   mqtrain_faults kill-at-sync@K ARGS...  SIGKILL instead of the K-th fsync(2): data written
//                                          but not yet durable nor renamed into place
//   mqtrain_faults drift@N ARGS...         under mpirun: rank 1 alone nudges a weight there (a
//                                          replica that drifted, for --check-sync)
//   mqtrain_faults count@0 ARGS...         no fault; prints "mqtrain_faults: W writes, S syncs"
//                                          to stderr at the end (the range of K above)
//   mqtrain_faults throw-X@N ARGS...       after N training iterations, throws what is not an
//                                          mq::Error: X = std (std::runtime_error), fs
//                                          (std::filesystem::filesystem_error), json (a JSON parse
//                                          error), alloc (std::bad_alloc), other (an int)
//
// write and fsync are replaced for the whole process (this executable defines them, which the
// dynamic linker prefers to libc's, for the C++ library's file streams too); the replacements
// call the kernel directly. stdio's own writes (stdout) do not go through them.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/ops.h"
#include "tools/cli/mqtrain_cli.h"

namespace {

struct Fault {
  enum Kind {
    none, kill, nan, drift, kill_in_write, kill_at_sync, count,
    throw_std, throw_fs, throw_json, throw_alloc, throw_other
  } kind = none;
  int64_t at = -1;  // iterations done (kill, nan), or the ordinal of the write / fsync
};

Fault g_fault;
std::atomic<int64_t> g_writes{0}, g_syncs{0};

Fault parse_fault(const std::string& s) {
  const size_t at = s.find('@');
  if (at == std::string::npos) return {};
  Fault f;
  const std::string kind = s.substr(0, at);
  f.kind = kind == "kill"            ? Fault::kill
           : kind == "nan"           ? Fault::nan
           : kind == "drift"         ? Fault::drift
           : kind == "kill-in-write" ? Fault::kill_in_write
           : kind == "kill-at-sync"  ? Fault::kill_at_sync
           : kind == "count"         ? Fault::count
           : kind == "throw-std"     ? Fault::throw_std
           : kind == "throw-fs"      ? Fault::throw_fs
           : kind == "throw-json"    ? Fault::throw_json
           : kind == "throw-alloc"   ? Fault::throw_alloc
           : kind == "throw-other"   ? Fault::throw_other
                                     : Fault::none;
  try {
    size_t used = 0;
    f.at = std::stoll(s.substr(at + 1), &used);
    if (used != s.size() - at - 1) f.at = -1;
  } catch (const std::exception&) {
    f.at = -1;
  }
  return f;
}

[[noreturn]] void die() {
  std::fflush(stdout);
  std::raise(SIGKILL);
  _exit(137);  // not reached
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buf, size_t n) {
  const int64_t k = ++g_writes;
  if (g_fault.kind == Fault::kill_in_write && k == g_fault.at) {
    if (n > 1) syscall(SYS_write, fd, buf, n / 2);
    die();
  }
  return syscall(SYS_write, fd, buf, n);
}

extern "C" int fsync(int fd) {
  const int64_t k = ++g_syncs;
  if (g_fault.kind == Fault::kill_at_sync && k == g_fault.at) die();
  return static_cast<int>(syscall(SYS_fsync, fd));
}

int main(int argc, char** argv) {
  g_fault = argc > 1 ? parse_fault(argv[1]) : Fault{};
  if (g_fault.kind == Fault::none || g_fault.at < 0) {
    std::fprintf(stderr, "usage: mqtrain_faults kill@N|nan@N|drift@N|kill-in-write@K|kill-at-sync@K|"
                         "count@0|throw-std|fs|json|alloc|other@N MQTRAIN-ARGS...\n");
    return 2;
  }
  mq::RunHooks hooks;
  hooks.after_step = [&](const mq::StepReport&, int64_t iterations, mq::Model& model) {
    if (iterations != g_fault.at) return;
    switch (g_fault.kind) {
      case Fault::kill: die();
      case Fault::nan:
        for (mq::Tensor& p : model.parameters()) p.fill_(std::nan(""));
        return;
      case Fault::drift: {
        const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
        if (rank && std::string(rank) == "1") {
          mq::Tensor w = model.parameters().front();
          w.copy_(mq::add_scalar(w, 1e-3));
        }
        return;
      }
      case Fault::throw_std: throw std::runtime_error("injected std::runtime_error");
      case Fault::throw_fs:
        throw std::filesystem::filesystem_error(
            "injected", "/injected/path", std::make_error_code(std::errc::too_many_symbolic_link_levels));
      case Fault::throw_json: {
        [[maybe_unused]] const nlohmann::json j = nlohmann::json::parse("{injected");
        return;
      }
      case Fault::throw_alloc: throw std::bad_alloc();
      case Fault::throw_other: throw 42;
      default: return;
    }
  };
  // mqtrain's own argv: the program name, then everything after the fault.
  std::vector<char*> args{argv[0]};
  args.insert(args.end(), argv + 2, argv + argc);
  const int rc = mq::tools::mqtrain_main(static_cast<int>(args.size()), args.data(), hooks);
  if (g_fault.kind == Fault::count)
    std::fprintf(stderr, "mqtrain_faults: %lld writes, %lld syncs\n",
                 static_cast<long long>(g_writes.load()), static_cast<long long>(g_syncs.load()));
  return rc;
}
