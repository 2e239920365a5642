#pragma once
// The MPI communicator (MPI_COMM_WORLD). Built with -DMQ_MPI; without it mpi_built() is false
// and make_mpi_communicator() throws mq::Error. CPU tensors reduce with MPI_Allreduce; CUDA
// tensors with NCCL when built with it (engine/dist/cuda/nccl_allreduce.cpp: one communicator
// bootstrapped over MPI, one GPU per local rank), else through host memory.
#include <memory>

#include "engine/dist/communicator.h"

namespace mq {

bool mpi_built();
// MPI_Init_thread (funneled: only the main thread calls MPI); MPI_Finalize in the destructor.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace mq
