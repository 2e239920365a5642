#pragma once
// Data parallelism and gradient accumulation for the trainers (docs/distributed.md).
//
// A step's global batch of n images is cut into S = ranks x accumulate equal slices, slice p
// holding rows [floor(p n / S), floor((p + 1) n / S)); rank r trains slices r*K .. r*K + K - 1
// (K = accumulate) one after the other, which together are rank r's equal part
// [floor(r n / N), floor((r + 1) n / N)) of the batch: the part its data loader builds
// (LoaderOptions::part). Every slice's loss is weighted by its share of the batch, so the
// summed gradients are those of the batch's mean loss. Per step, the ranks sum in one message:
// every parameter gradient, for MetaQuant dL/dG and the quantized weights' g_W^ (the next step's
// meta input), the batch-norm statistics and the loss and accuracy counts; every rank then takes
// the same optimizer step, so the models and the meta network stay identical. MetaQuant's meta
// rows are cut into S parts too: a rank computes G (and the LSTM state) of its own parts only,
// the parts of G are exchanged, and after the sum of dL/dG each rank runs the meta backward of
// its parts; the meta network's gradients are summed in a second message. Batch norm normalizes
// each slice with its own statistics (as PyTorch's DDP); the running statistics are updated once
// per step from the mean over the slices of their batch mean and unbiased variance.
//
// With one rank and K = 1 nothing of this runs: the step is the plain one.
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/dist/communicator.h"
#include "models/layers.h"
#include "models/module.h"

namespace mq {

struct DataParallel {
  Communicator* comm = nullptr;  // nullptr: one process
  int accumulate = 1;            // micro-batches per step on each rank
  int check_every = 0;           // > 0: compare parameter checksums over ranks every N steps

  int ranks() const { return comm ? comm->size() : 1; }
  int rank() const { return comm ? comm->rank() : 0; }
  int slices() const { return ranks() * accumulate; }
};

// Rows [begin, end) of part `part` of `parts` equal parts of n rows.
std::pair<int64_t, int64_t> part_bounds(int64_t n, int parts, int part);

// This rank's slices of a global batch of n images, as row ranges of the rank's own part.
std::vector<std::pair<int64_t, int64_t>> rank_slices(int64_t n, const DataParallel& p);

// mq::Error naming --accumulate and the ranks when a batch of `batch` images (or the last,
// partial one of `dataset_size`) leaves a slice empty.
void check_slices_fill(int64_t batch, int64_t dataset_size, const DataParallel& p);

// The batch-norm layers of a model, switched to deferred running statistics for one step.
class BatchNormSync {
 public:
  explicit BatchNormSync(Module& model);
  void defer(bool on);
  // The statistics sums of this step, for the ranks to add up (empty without batch norm).
  std::vector<Tensor> sums() const;
  // Updates the running statistics from the mean over `slices` slices and clears the sums.
  void apply(int slices);

 private:
  std::vector<BatchNorm2d*> layers_;
};

// Every rank's rows [part_bounds(n, N, r)] of `full` ([n, ...], contiguous) copied to all ranks,
// so that each holds all of them (bytes as they are: no arithmetic, no rounding). MetaQuant's
// G and LSTM state, of which each rank computes its own rows.
void gather_rows(Communicator& comm, Tensor& full);

// FNV-1a of the bytes of every tensor (copied to the host when on CUDA).
uint64_t checksum(const std::vector<Tensor>& tensors);
// Compares this rank's checksum with every other rank's; mq::Error naming the ranks that
// differ from rank 0 and the step when they are not all equal.
void check_replicas_agree(Communicator& comm, uint64_t mine, int64_t step);

}  // namespace mq
