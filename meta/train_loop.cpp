#include "meta/train_loop.h"

#include <chrono>
#include <cmath>

#include "engine/ops.h"
#include "engine/transfer.h"

namespace mq {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

EpochResult train_epoch(ResNetCifar& model, DataLoader& loader, Optimizer& optimizer,
                        Device device, int epoch, const StepCallback& on_step) {
  model.train();
  loader.start_epoch(epoch);
  EpochResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  auto t0 = std::chrono::steady_clock::now();
  size_t b = 0;
  BatchUploader images(device), labels(device);
  for (Batch batch; loader.next(batch); ++b) {
    Tensor x = images.upload(batch.images), y = labels.upload(batch.labels);
    optimizer.zero_grad();
    Tensor logits = model.forward(x);
    Tensor loss = cross_entropy(logits, y);
    double value = loss.item();
    MQ_CHECK(std::isfinite(value),
             "training diverged: loss is {} at epoch {} batch {}; lower the learning rate (-lr) "
             "or check the input data", value, epoch + 1, b + 1);
    loss.backward();
    optimizer.step();
    loss_sum += value * batch.size();
    correct += count_correct(logits, y);
    r.images += batch.size();
    if (on_step) {
      StepReport s;
      s.batch_index = b;
      s.batches = loader.batches_per_epoch();
      s.loss = value;
      s.running_loss = loss_sum / r.images;
      s.running_acc = 100.0 * correct / r.images;
      s.elapsed_s = seconds_since(t0);
      s.images_per_s = r.images / std::max(s.elapsed_s, 1e-9);
      on_step(s);
    }
  }
  r.seconds = seconds_since(t0);
  r.loss = r.images ? loss_sum / r.images : 0;
  r.acc = r.images ? 100.0 * correct / r.images : 0;
  r.images_per_s = r.images / std::max(r.seconds, 1e-9);
  return r;
}

double evaluate(ResNetCifar& model, DataLoader& loader, Device device) {
  NoGradGuard ng;
  model.eval();
  loader.start_epoch(0);
  int64_t correct = 0, total = 0;
  BatchUploader images(device), labels(device);
  for (Batch batch; loader.next(batch);) {
    Tensor logits = model.forward(images.upload(batch.images));
    correct += count_correct(logits, labels.upload(batch.labels));
    total += static_cast<int64_t>(batch.size());
  }
  model.train();
  return total ? 100.0 * correct / total : 0;
}

}  // namespace mq
