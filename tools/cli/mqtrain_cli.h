#pragma once
// The mqtrain command line as a library. The shipped tool (tools/mqtrain.cpp) runs it as is; the
// tests' fault-injecting build (tests/tools/mqtrain_faults.cpp) runs the same code with extra
// hooks, so no test machinery lives in the product.
#include "meta/training_run.h"

namespace mq::tools {

// Parses argv (`mqtrain --help`), runs the subcommand and returns the process exit code.
// `extra` is called by training runs (pretrain, quantize) after the progress bar's own hooks.
int mqtrain_main(int argc, char** argv, const RunHooks& extra = {});

}  // namespace mq::tools
