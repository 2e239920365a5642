#include "meta/train_loop.h"

#include "engine/ops.h"
#include "engine/transfer.h"

namespace mq {

double evaluate(Model& model, DataLoader& loader, Device device) {
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
