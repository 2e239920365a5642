// Fuzz target: mqtrain's command line, parsed and validated (parse_mqtrain_args in
// tools/cli/mqtrain_cli.h), never run: no training starts and no file is read or written.
// The input is argv without the program name, one argument per line ('\n'; a NUL also
// separates). mq::Error (a refused value) and CLI11's own parse errors (returned as an exit code)
// are the expected outcomes; any other exception, crash or sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "tools/cli/mqtrain_cli.h"

namespace {

constexpr size_t kMaxArgs = 64;

std::vector<std::string> split_args(const uint8_t* data, size_t size) {
  std::vector<std::string> args(1);
  for (size_t i = 0; i < size && args.size() <= kMaxArgs; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0')
      args.emplace_back();
    else
      args.back() += c;
  }
  if (args.size() == 1 && args[0].empty()) args.clear();
  return args;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> args = split_args(data, size);
  std::ostringstream out, err;  // --help and CLI11's messages, discarded
  try {
    const mq::tools::MqtrainCommand c = mq::tools::parse_mqtrain_args(args, out, err);
    // A parsed command is whole: a run command carries settings that validate again.
    if (c.command == mq::tools::Command::pretrain || c.command == mq::tools::Command::quantize)
      mq::validate_run_settings(c.settings);
  } catch (const mq::Error&) {
  }
  return 0;
}
