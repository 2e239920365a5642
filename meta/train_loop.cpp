#include "meta/train_loop.h"

#include "engine/ops.h"
#include "engine/transfer.h"

namespace mq {

double evaluate(Model& model, DataLoader& loader, Device device, Communicator* comm) {
  NoGradGuard ng;
  model.eval();
  loader.start_epoch(0);
  const size_t ranks = comm ? static_cast<size_t>(comm->size()) : 1;
  const size_t rank = comm ? static_cast<size_t>(comm->rank()) : 0;
  int64_t correct = 0, total = 0;
  BatchUploader images(device), labels(device);
  for (Batch batch; loader.next(batch);) {
    if (batch.index % ranks != rank) continue;
    Tensor logits = model.forward(images.upload(batch.images));
    correct += count_correct(logits, labels.upload(batch.labels));
    total += static_cast<int64_t>(batch.size());
  }
  model.train();
  if (ranks > 1) {
    std::vector<Tensor> counts{Tensor::from_vector<int64_t>({correct, total}, {2})};
    comm->allreduce_sum(counts);
    const std::vector<int64_t> v = counts[0].to_vector<int64_t>();
    correct = v[0];
    total = v[1];
  }
  return total ? 100.0 * correct / total : 0;
}

}  // namespace mq
