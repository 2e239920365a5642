// mqtrain_faults: mqtrain with a fault injected, for the resume tests (tests/test_resume.cpp).
// Built only with the tests; the shipped mqtrain has no fault code.
//
//   mqtrain_faults kill@N ARGS...   mqtrain ARGS..., SIGKILL to itself once N training
//                                   iterations are done (no clean-up, like a crash)
//   mqtrain_faults nan@N ARGS...    mqtrain ARGS..., the weights turned into NaN there
//                                   (a diverging run)
#include <csignal>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/cli/mqtrain_cli.h"

namespace {

struct Fault {
  enum Kind { none, kill, nan } kind = none;
  int64_t at = -1;  // training iterations done when it fires
};

Fault parse_fault(const std::string& s) {
  const size_t at = s.find('@');
  if (at == std::string::npos) return {};
  Fault f;
  const std::string kind = s.substr(0, at);
  f.kind = kind == "kill" ? Fault::kill : kind == "nan" ? Fault::nan : Fault::none;
  try {
    size_t used = 0;
    f.at = std::stoll(s.substr(at + 1), &used);
    if (used != s.size() - at - 1) f.at = -1;
  } catch (const std::exception&) {
    f.at = -1;
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const Fault fault = argc > 1 ? parse_fault(argv[1]) : Fault{};
  if (fault.kind == Fault::none || fault.at < 0) {
    std::fprintf(stderr, "usage: mqtrain_faults kill@N|nan@N MQTRAIN-ARGS...\n");
    return 2;
  }
  mq::RunHooks hooks;
  hooks.after_step = [&](const mq::StepReport&, int64_t iterations, mq::ResNetCifar& model) {
    if (iterations != fault.at) return;
    if (fault.kind == Fault::kill) {
      std::fflush(stdout);
      std::raise(SIGKILL);
    }
    for (mq::Tensor& p : model.parameters()) p.fill_(std::nan(""));
  };
  // mqtrain's own argv: the program name, then everything after the fault.
  std::vector<char*> args{argv[0]};
  args.insert(args.end(), argv + 2, argv + argc);
  return mq::tools::mqtrain_main(static_cast<int>(args.size()), args.data(), hooks);
}
