#include "trainer/mpi_world.h"

#include <mpi.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace microgpt {

std::unique_ptr<MpiWorld> MpiWorld::Start() {
  MPI_Init(nullptr, nullptr);
  // Errors end the job with a message rather than returning codes nobody
  // could act on mid-step.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  return std::unique_ptr<MpiWorld>(new MpiWorld(rank, ranks));
}

MpiWorld::~MpiWorld() { MPI_Finalize(); }

void MpiWorld::AllGather(const void* mine, absl::Span<const int64_t> bytes,
                         void* all) {
  Check(static_cast<int>(bytes.size()) == ranks_,
        "MpiWorld::AllGather: one size per rank");
  std::vector<int> counts(ranks_), displacements(ranks_);
  int64_t offset = 0;
  for (int r = 0; r < ranks_; ++r) {
    // In units of 4 bytes (MPI counts are ints): up to 8 GiB in all.
    Check(bytes[r] % 4 == 0, "MpiWorld::AllGather: a multiple of 4 bytes");
    counts[r] = static_cast<int>(bytes[r] / 4);
    displacements[r] = static_cast<int>(offset / 4);
    offset += bytes[r];
  }
  Check(offset / 4 < (1LL << 31), "MpiWorld::AllGather: too large");
  MPI_Allgatherv(mine, counts[rank_], MPI_FLOAT, all, counts.data(),
                 displacements.data(), MPI_FLOAT, MPI_COMM_WORLD);
}

void MpiWorld::Broadcast(std::string* bytes) {
  int64_t size = static_cast<int64_t>(bytes->size());
  MPI_Bcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  bytes->resize(size);
  // In pieces of at most 1 GiB (MPI counts are ints).
  constexpr int64_t kPiece = int64_t{1} << 30;
  for (int64_t offset = 0; offset < size; offset += kPiece) {
    const int n = static_cast<int>(std::min(kPiece, size - offset));
    MPI_Bcast(bytes->data() + offset, n, MPI_BYTE, 0, MPI_COMM_WORLD);
  }
}

absl::Status MpiWorld::Agree(const absl::Status& status) {
  // Every rank's code, then the first failing rank's message.
  const int code = static_cast<int>(status.code());
  std::vector<int> codes(ranks_);
  MPI_Allgather(&code, 1, MPI_INT, codes.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int failed = -1;
  for (int r = 0; r < ranks_ && failed < 0; ++r) {
    if (codes[r] != 0) failed = r;
  }
  if (failed < 0) return absl::OkStatus();
  std::string message(status.message());
  int64_t size = static_cast<int64_t>(message.size());
  MPI_Bcast(&size, 1, MPI_INT64_T, failed, MPI_COMM_WORLD);
  message.resize(size);
  MPI_Bcast(message.data(), static_cast<int>(size), MPI_BYTE, failed,
            MPI_COMM_WORLD);
  return absl::Status(static_cast<absl::StatusCode>(codes[failed]),
                      absl::StrCat("rank ", failed, ": ", message));
}

}  // namespace microgpt
