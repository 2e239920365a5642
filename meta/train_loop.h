#pragma once
// What a training epoch reports (per step, to a callback, and for the whole epoch; the loop is
// train_epoch in meta/trainers.h), and test evaluation.
#include <functional>

#include "data/loader.h"
#include "engine/dist/communicator.h"
#include "models/model.h"

namespace mq {

struct StepReport {
  size_t batch_index = 0;  // within the epoch
  size_t batches = 0;
  double loss = 0;           // this batch
  double running_loss = 0;   // mean over the epoch so far
  double running_acc = 0;    // percent, epoch so far
  double images_per_s = 0;   // epoch so far
  double elapsed_s = 0;
  int threads = 0, max_threads = 0;  // CPU threads of this step and the most allowed; 0: not governed
};
using StepCallback = std::function<void(const StepReport&)>;

struct EpochResult {
  double loss = 0;  // mean training loss
  double acc = 0;   // training accuracy, percent
  double images_per_s = 0;
  double seconds = 0;
  size_t images = 0;
};

// Accuracy (percent) in eval mode without history. With a communicator of several ranks, rank
// r evaluates batches r, r + N, ... and the counts are summed over the ranks (every rank gets
// the whole test set's accuracy, the same as one process computes).
double evaluate(Model& model, DataLoader& loader, Device device, Communicator* comm = nullptr);

}  // namespace mq
