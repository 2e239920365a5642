#pragma once
// The job a process belongs to: alone, or one rank of an MPI job started by mpirun, srun or
// another launcher (docs/distributed.md).
//
//   Communicator& comm = init_job();   // first thing in main; MPI_Init when launched by MPI
//   ... comm.rank(), comm.size() ...
//   finalize_job();                    // MPI_Finalize (also run at exit)
//
// A build without MPI started by a launcher with more than one rank refuses to run (init_job
// throws mq::Error saying so): N copies would train the same run and overwrite each other's
// logs.
#include <string>

#include "engine/dist/communicator.h"

namespace mq {

// Whether this binary was built with MPI (-DMQ_MPI).
bool mpi_available();

// Ranks of the job as the launcher announces them in the environment (OpenMPI's
// OMPI_COMM_WORLD_SIZE, PMIx, PMI/Slurm), or 1 when none did. Reads no MPI library.
int launcher_world_size();
// Ranks of this job on this node (0-based local rank, node's rank count) from the launcher's
// environment; {0, 1} when none announced them.
struct LocalRank {
  int rank = 0, size = 1;
};
LocalRank launcher_local_rank();

// Initializes MPI when the process was started by a launcher with more than one rank (or
// MQ_FORCE_MPI=1), else returns single_process(). Idempotent.
Communicator& init_job();
// The job's communicator (single_process() before init_job).
Communicator& job();
void finalize_job();

}  // namespace mq
