// ProcessGroup: the collective operations data-parallel training needs from
// the processes (ranks) that run one job together, as torch.distributed's
// ProcessGroup names them. The trainer implements it over MPI
// (trainer/mpi_world.h); common/ has no MPI in it. Every rank calls each
// operation at the same point with matching sizes.
#ifndef MICROGPT_COMMON_PROCESS_GROUP_H_
#define MICROGPT_COMMON_PROCESS_GROUP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace microgpt {

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  // Gathers every rank's bytes: rank r sends bytes[r] of them (a multiple of
  // 4) from `mine`; `all` receives the concatenation in rank order.
  virtual void AllGather(const void* mine, absl::Span<const int64_t> bytes,
                         void* all) = 0;
  // Rank 0's `bytes` on every rank (the others' are replaced).
  virtual void Broadcast(std::string* bytes) = 0;
  // OK on every rank when every rank's `status` is OK; else, on every rank,
  // the first failing rank's error prefixed with "rank N: ".
  virtual absl::Status Agree(const absl::Status& status) = 0;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_PROCESS_GROUP_H_
