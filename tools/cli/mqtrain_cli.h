#pragma once
// The mqtrain command line as a library. The shipped tool (tools/mqtrain.cpp) runs it as is; the
// tests' fault-injecting build (tests/tools/mqtrain_faults.cpp) runs the same code with extra
// hooks, so no test machinery lives in the product; the command-line fuzz target
// (tests/fuzz/fuzz_cli.cpp) runs the parsing and validation alone.
#include <iosfwd>
#include <string>
#include <vector>

#include "meta/run/training_run.h"

namespace mq::tools {

enum class Command { none, pretrain, quantize, sweep, eval, import_pth, verify_golden };

// A command line, parsed and validated.
struct MqtrainCommand {
  Command command = Command::none;  // none: --help or a command-line error, already printed
  int exit_code = 0;                // for none
  RunSettings settings;             // pretrain, quantize, eval
  int threads = 0;                  // 0: all cores (shared among the ranks of one node)
  bool spread_trials = false;       // under N ranks: trial t runs alone on rank t % N
  bool eval_quantized = false;
  std::string pth_in, pth_out;           // import-pth
  std::string golden_dir, golden_case;   // verify-golden
  std::vector<std::string> golden_skip;
  std::vector<std::string> grid;         // sweep: KEY=V1,V2,...
  std::string sweep_out;                 // sweep: table and figures
};

// What a program built on this command line starts from: its name (in messages and --help) and
// the -m / -d defaults. A program with its own model (docs/examples/custom_cnn.cpp) registers
// it in the zoo and names it here.
struct CliDefaults {
  std::string program = "mqtrain";
  std::string model = "resnet20";
  std::string dataset = "synthetic";
};

// Parses `args` (argv without the program name) and validates every value that needs no file
// (validate_run_settings): mq::Error names the flag. Reads and writes no file, starts nothing.
// --help and CLI11's own errors (unknown flag, a value out of its range) are printed to `out` /
// `err` and come back as Command::none with their exit code.
MqtrainCommand parse_mqtrain_args(const std::vector<std::string>& args, std::ostream& out,
                                  std::ostream& err, const CliDefaults& defaults = {});

// Runs a parsed command; returns the exit code. `extra` is called by training runs (pretrain,
// quantize) after the progress bar's own hooks.
// Under an MPI launcher, the job's ranks (engine/dist/job.h) train together, or split the
// trials with --spread-trials.
int run_mqtrain_command(const MqtrainCommand& command, const RunHooks& extra = {});

// Both, with every exception (mq::Error, file system, JSON, out of memory, any other) turned
// into "<program>: error: <message>" on stderr and exit code 1.
int mqtrain_main(int argc, char** argv, const RunHooks& extra = {},
                 const CliDefaults& defaults = {});

}  // namespace mq::tools
