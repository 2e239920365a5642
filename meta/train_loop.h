#pragma once
// The epoch loop shared by the trainers: forward, mean cross-entropy, backward, an update, with
// running loss/accuracy and throughput reported to a callback; and test evaluation.
#include <functional>

#include "data/loader.h"
#include "engine/optim/optimizer.h"
#include "models/resnet_cifar.h"

namespace mq {

struct StepReport {
  size_t batch_index = 0;  // within the epoch
  size_t batches = 0;
  double loss = 0;           // this batch
  double running_loss = 0;   // mean over the epoch so far
  double running_acc = 0;    // percent, epoch so far
  double images_per_s = 0;   // epoch so far
  double elapsed_s = 0;
};
using StepCallback = std::function<void(const StepReport&)>;

struct EpochResult {
  double loss = 0;  // mean training loss
  double acc = 0;   // training accuracy, percent
  double images_per_s = 0;
  double seconds = 0;
  size_t images = 0;
};

// One epoch of plain training (full precision, or STE when the model's layers quantize):
// zero grads, forward in train mode, mean cross-entropy, backward, optimizer.step().
// A NaN or infinite loss throws mq::Error naming the epoch and batch.
EpochResult train_epoch(ResNetCifar& model, DataLoader& loader, Optimizer& optimizer,
                        Device device, int epoch, const StepCallback& on_step = nullptr);

// Accuracy (percent) in eval mode without history.
double evaluate(ResNetCifar& model, DataLoader& loader, Device device);

}  // namespace mq
