#pragma once
// Per-epoch checkpoints of a training run, for `mqtrain --resume`.
//
// One mq checkpoint file (engine/io/checkpoint.h: atomic write, version, CRC) holds the model's
// state_dict ("model.<name>"), the trainer's state ("trainer.<name>": optimizers, meta network,
// meta inputs, LSTM state, step count) and, as JSON metadata, the run's identity (its config)
// and progress (epochs done, iterations logged, lr, schedule memory, test accuracies).
// The data order needs no saved RNG: batch b of epoch e is a pure function of (seed, e, b)
// (data/loader.h), and the seed is part of the identity. So a run resumed from the checkpoint of
// epoch k on the CPU continues bit for bit as the uninterrupted run.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "meta/trainers.h"

namespace mq {

struct RunProgress {
  int epochs_done = 0;      // complete epochs (trained, evaluated, logged)
  int64_t iterations = 0;   // training iterations logged so far
  double lr = 0;            // the lr of the next epoch
  LrSchedule::State schedule;
  std::vector<double> test_acc;  // per epoch
  std::vector<double> train_loss;  // per epoch (empty when resumed from an older checkpoint)
  double best = 0;
  bool finished = false;    // the run reached its last epoch (or stopped early)
};

constexpr const char* kRunCheckpointName = "checkpoint.mqck";

// Writes model + trainer state and progress to `path` atomically. `identity` is the run's
// configuration: a resume must match it (see load_run_checkpoint).
void save_run_checkpoint(const std::string& path, const Model& model,
                         const QuantTrainer& trainer, const RunProgress& progress,
                         const nlohmann::json& identity);

// Restores model and trainer from `path` and returns the progress. Errors (naming the file and
// the key) when the checkpoint's identity differs from `identity` in any key they share.
RunProgress load_run_checkpoint(const std::string& path, Model& model,
                                QuantTrainer& trainer, const nlohmann::json& identity);

// Only the progress (no model needed): how far the run in `path` got.
RunProgress read_run_progress(const std::string& path);

}  // namespace mq
