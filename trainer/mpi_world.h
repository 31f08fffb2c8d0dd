// MpiWorld: this process's place in an `mpirun` job (Open MPI), for
// data-parallel training (`mpirun -n N microgpt-trainer train ...`): a
// ProcessGroup over MPI_COMM_WORLD.
//
// Each rank computes the gradients of its shards of the global batch; the
// shards' losses and gradients are gathered to every rank and summed in shard
// order (common/training_graph.h), so every rank applies the same Adam step,
// and N ranks of T threads give the weights of one process of N * T threads
// bit for bit. Every rank reads the dataset and, to resume, the checkpoint
// root (the same path on every node: a shared volume); rank 0 alone writes
// into the root and reports (trainer/training_job.h). MPI errors are fatal:
// a rank that dies ends the job on every rank (mpirun kills the others and
// exits non-zero).
//
// Built only where CMake finds MPI (MICROGPT_HAVE_MPI); LaunchedByMpirun
// lets a build without it refuse to run under mpirun.
//
//   std::unique_ptr<MpiWorld> world;
//   if (LaunchedByMpirun()) world = MpiWorld::Start();
#ifndef MICROGPT_TRAINER_MPI_WORLD_H_
#define MICROGPT_TRAINER_MPI_WORLD_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/process_group.h"

namespace microgpt {

// True when this process was started by mpirun: Open MPI's launcher sets
// OMPI_COMM_WORLD_SIZE (and PMIx's PMIX_RANK) in every rank's environment.
inline bool LaunchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

#ifdef MICROGPT_HAVE_MPI

class MpiWorld final : public ProcessGroup {
 public:
  // MPI_Init; call once, before other threads start.
  static std::unique_ptr<MpiWorld> Start();
  ~MpiWorld() override;  // MPI_Finalize

  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  void AllGather(const void* mine, absl::Span<const int64_t> bytes,
                 void* all) override;
  void Broadcast(std::string* bytes) override;
  absl::Status Agree(const absl::Status& status) override;

 private:
  MpiWorld(int rank, int ranks) : rank_(rank), ranks_(ranks) {}
  const int rank_;
  const int ranks_;
};

#endif  // MICROGPT_HAVE_MPI

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_MPI_WORLD_H_
