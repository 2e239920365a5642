#pragma once
// DataLoader: batches of a Dataset as Tensors (images f32 [N, C, H, W], labels i64 [N]), with
// seeded per-epoch shuffling, optional augmentation and normalization, the last partial batch
// kept (unless drop_last), and a background thread preparing the next batch while the current one
// is used (double buffering).
//
// Batch tensors are recycled once the caller has dropped every reference to them (views
// included), so a steady training loop allocates nothing; a batch that is kept stays intact.
//
// Determinism: batch b of epoch e is a pure function of (seed, e, b) and the options: the
// permutation comes from (seed, e), each sample's crop/flip from (seed, e, sample index). Timing,
// threads and prefetch depth never change the data.
//
// Usage:
//   DataLoader loader(train_set, {.batch = 128, .augment = true, .seed = 1,
//                                 .normalization = Normalization::cifar()});
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     for (Batch b; loader.next(b);) train_step(b.images, b.labels);
//   }
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "engine/tensor.h"

namespace mq {

struct LoaderOptions {
  size_t batch = 128;
  bool shuffle = true;
  bool augment = false;         // apply `augmentation` (crop + flip) to every sample
  AugmentOptions augmentation{};  // used when augment
  uint64_t seed = 0;
  Normalization normalization{};  // empty: pixels scaled to [0, 1]
  bool drop_last = false;       // drop the last partial batch instead of keeping it
  bool background = true;       // prepare batches on a worker thread
  size_t prefetch = 1;          // batches prepared ahead (1 = double buffering)
  // Data parallel (meta/data_parallel.h): only part `part` of `parts` equal parts of every
  // batch, rows [floor(part n / parts), floor((part + 1) n / parts)) of its n images, is built;
  // the images themselves (order, augmentation) are those of the whole batch.
  int part = 0, parts = 1;
};

struct Batch {
  Tensor images;                // f32 [n, C, H, W]
  Tensor labels;                // i64 [n]
  std::vector<size_t> indices;  // dataset index of each sample
  size_t global_size = 0;       // images in the whole batch, of which this is a part
  size_t index = 0;             // batch number within the epoch
  int epoch = 0;
  size_t size() const { return indices.size(); }
};

class DataLoader {
 public:
  // Borrows `data`: it must outlive the loader.
  DataLoader(const Dataset& data, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // (Re)starts at batch 0 of `epoch` with that epoch's order; abandons the rest of the current
  // one. next() without a start_epoch() first starts epoch 0.
  void start_epoch(int epoch);
  // The next batch of the epoch; false (and `batch` untouched) once the epoch is exhausted.
  // Rethrows any error raised while preparing the batch.
  bool next(Batch& batch);

  size_t batches_per_epoch() const { return batches_; }

  // Builds batch `b` of `epoch` directly on the calling thread (the same result next() gives).
  Batch make_batch(int epoch, size_t b) const;

 private:
  struct Ready {
    Batch batch;
    std::exception_ptr error;
  };
  std::shared_ptr<const std::vector<size_t>> make_order(int epoch) const;
  Batch build(const std::vector<size_t>& order, int epoch, size_t b) const;
  void worker_loop();
  // Batch tensors of n samples: recycled from the pool when nobody else holds them any more.
  std::pair<Tensor, Tensor> acquire(size_t n) const;

  const Dataset* data_;  // borrowed: the constructor's `data`
  LoaderOptions options_;
  NormalizeTable table_;
  size_t batches_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stop_ = false;
  int epoch_ = 0;
  uint64_t generation_ = 0;
  std::shared_ptr<const std::vector<size_t>> order_;
  size_t next_to_make_ = 0;
  size_t next_to_take_ = 0;
  std::deque<Ready> ready_;
  std::thread worker_;

  mutable std::mutex pool_mutex_;
  mutable std::vector<std::pair<Tensor, Tensor>> pool_;  // images, labels
};

}  // namespace mq
