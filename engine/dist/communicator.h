#pragma once
// Collective communication between the processes of one job (docs/distributed.md): the data-
// parallel trainers sum their gradients with allreduce_sum, the tools share names and results
// with the byte collectives. One process alone is single_process(): every collective is the
// identity, so code written for N ranks runs unchanged with one.
//
// Implementations: single_process() here; MPI (engine/dist/mpi_communicator.cpp, built with
// -DMQ_MPI=ON|AUTO) for CPU tensors, with NCCL for CUDA tensors when mq is built with CUDA and
// NCCL (engine/dist/cuda/nccl_allreduce.cpp). The job's communicator is set up once by
// init_job (engine/dist/job.h).
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mq {

// What allreduce_sum and allgather have moved so far (benchmarks and the epoch line report it
// per step).
struct CommStats {
  int64_t calls = 0;
  int64_t bytes = 0;     // per rank, as sent
  double seconds = 0;    // wall time inside the collectives, packing included
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  const CommStats& stats() const { return stats_; }
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "single process", "MPI (4 ranks)", "MPI (4 ranks), NCCL for CUDA tensors".
  virtual std::string describe() const = 0;

  // Sums every tensor element-wise over the ranks, in place. Every rank passes tensors of the
  // same shapes, dtypes and devices in the same order; floating tensors are summed in their
  // own dtype (with two ranks a + b, which does not depend on the order). Contiguous tensors
  // only; undefined tensors are an error.
  virtual void allreduce_sum(std::vector<Tensor>& tensors) = 0;
  // Every rank's `bytes`, in rank order (used for checksums and per-trial results).
  virtual std::vector<std::string> allgather(const std::string& bytes) = 0;
  // Rank `root`'s `bytes` on every rank.
  virtual void broadcast(std::string& bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job with `code` (MPI_Abort), after a rank failed alone: the
  // others would otherwise wait for it forever in the next collective.
  [[noreturn]] virtual void abort(int code) = 0;

 protected:
  CommStats stats_;
};

// The communicator of one process (rank 0 of 1).
Communicator& single_process();

// Tensors of one dtype and device packed into one flat buffer, so that a step's many small
// gradients travel as one message: pack, reduce `flat`, unpack.
struct PackedTensors {
  Tensor flat;                 // [total elements], contiguous
  std::vector<Tensor> parts;   // the tensors packed, in order
};
// Groups `tensors` by (dtype, device), in first-seen order, each group copied into its `flat`.
std::vector<PackedTensors> pack_tensors(const std::vector<Tensor>& tensors);
// Copies each group's flat buffer back into its tensors.
void unpack_tensors(const std::vector<PackedTensors>& packs);

}  // namespace mq
