#pragma once
// Allreduce of CUDA tensors over NCCL for the MPI communicator: one NCCL communicator over the
// job's ranks, its unique id made by rank 0 and broadcast over MPI (the bootstrap), on the
// device's stream. Built when mq has CUDA and finds NCCL (MQ_WITH_NCCL); otherwise
// nccl_available() is false and CUDA tensors reduce through host memory.
#include <memory>

#include "engine/dist/communicator.h"

namespace mq {

class NcclAllreduce {
 public:
  virtual ~NcclAllreduce() = default;
  // flat: a contiguous f32/f64/i64 CUDA tensor on the communicator's device, summed in place.
  virtual void sum(Tensor& flat) = 0;
};

bool nccl_available();
// `bootstrap` carries the unique id from rank 0 to the others.
std::unique_ptr<NcclAllreduce> make_nccl_allreduce(int rank, int size, Device device,
                                                   Communicator& bootstrap);

}  // namespace mq
