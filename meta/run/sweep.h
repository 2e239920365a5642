#pragma once
// A study in one command (`mqtrain sweep`, docs/distributed.md): a grid of settings, each
// trained for T trials, the jobs spread over the ranks of the job (job j on rank j % N, each a
// whole run in one process, as --spread-trials runs trials), the results gathered, and the
// reference README's table: per setting the best and the last-10-epoch test accuracy, mean and
// variance over the trials.
//
//   auto axes = {parse_sweep_axis("meta=ste,MultiFC"), parse_sweep_axis("optimizer=SGD,Adam")};
//   auto results = run_sweep(expand_grid(base, axes), comm);
//   std::string md = sweep_table(results);
#include <string>
#include <vector>

#include "meta/run/training_run.h"

namespace mq {

// KEY=V1,V2,... with KEY one of sweep_keys(); mq::Error naming --grid otherwise.
struct SweepAxis {
  std::string key;
  std::vector<std::string> values;
};
SweepAxis parse_sweep_axis(const std::string& text);
std::string sweep_keys();  // "meta, optimizer, quantize, bits, lr, lr-adjust, hidden, nfc, model"

struct SweepSetting {
  std::string label;     // "meta=MultiFC optimizer=Adam"
  std::string run_name;  // its run directories: "meta-MultiFC_optimizer-Adam[-trialN]"
  RunSettings settings;
  std::vector<std::string> values;  // its value of every axis, in axis order
};
// Every combination of the axes' values (the first axis varies slowest), each validated.
std::vector<SweepSetting> expand_grid(const RunSettings& base, const std::vector<SweepAxis>& axes);

struct SweepResult {
  SweepSetting setting;
  std::vector<RunResult> trials;
  TrialSummary summary;
};
// Runs settings x base.trials jobs over the ranks of `comm`; every rank gets every result.
std::vector<SweepResult> run_sweep(const std::vector<SweepSetting>& settings, Communicator& comm,
                                   const RunHooks& hooks = {});

// The markdown table (the reference README's columns): one column per axis (`keys`), then the
// trials and the accuracies.
std::string sweep_table(const std::vector<SweepAxis>& axes, const std::vector<SweepResult>& results);

}  // namespace mq
