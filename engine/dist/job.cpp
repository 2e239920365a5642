#include "engine/dist/job.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string_view>

#include "engine/dist/mpi_communicator.h"

namespace mq {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return end && *end == '\0' && n >= 0 && n < (1L << 30) ? static_cast<int>(n) : fallback;
}

// The first of several launchers' variables that is set.
int first_env(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names) {
    const int v = env_int(n, -1);
    if (v >= 0) return v;
  }
  return fallback;
}

Communicator* g_job = nullptr;
std::unique_ptr<Communicator> g_owned;

}  // namespace

int launcher_world_size() {
  // OpenMPI's mpirun, MPICH's Hydra (PMI), Slurm's srun (a step's task count).
  return std::max(1, first_env({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"}, 1));
}

LocalRank launcher_local_rank() {
  LocalRank r;
  r.rank = first_env({"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}, 0);
  r.size = std::max(1, first_env({"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                  "SLURM_NTASKS_PER_NODE"}, 1));
  if (r.rank >= r.size) r.size = r.rank + 1;
  return r;
}

bool mpi_available() { return mpi_built(); }

Communicator& init_job() {
  if (g_job) return *g_job;
  const int announced = launcher_world_size();
  const char* force = std::getenv("MQ_FORCE_MPI");
  const bool want_mpi = announced > 1 || (force && std::string_view(force) == "1");
  if (!want_mpi) {
    g_job = &single_process();
    return *g_job;
  }
  MQ_CHECK(mpi_built(),
           "started by an MPI launcher with {} ranks, but this build has no MPI: the ranks "
           "would each train the same run and overwrite each other's logs. Rebuild with MPI "
           "(Debian: libopenmpi-dev; cmake -DMQ_MPI=ON) or start one process without mpirun",
           announced);
  g_owned = make_mpi_communicator();
  g_job = g_owned.get();
  std::atexit(finalize_job);
  return *g_job;
}

Communicator& job() { return g_job ? *g_job : single_process(); }

void finalize_job() {
  if (g_owned) {
    g_job = nullptr;
    g_owned.reset();  // MPI_Finalize
  }
}

}  // namespace mq
