// Dataset paths in StartTraining requests: relative to the trainer's data root
// and confined to it. A client may name any dataset file under the root but
// nothing outside it, whether by "..", an absolute path or a symlink that
// points out of the root.
//
//   absl::StatusOr<std::string> path = ResolveDatasetPath("/data",
//   "names.txt");
//   // *path == "/data/names.txt" (with symlinks resolved)
#ifndef MICROGPT_TRAINER_DATASET_PATH_H_
#define MICROGPT_TRAINER_DATASET_PATH_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

// The canonical path (symlinks resolved) of the dataset file `relative` under
// `root`.
//   INVALID_ARGUMENT: `relative` is empty, absolute, contains a ".." component
//     or a NUL, resolves outside the root, or is not a regular file;
//   NOT_FOUND: it does not exist;
//   FAILED_PRECONDITION: the root itself does not exist.
// Errors name the request field, "dataset_path".
absl::StatusOr<std::string> ResolveDatasetPath(absl::string_view root,
                                               absl::string_view relative);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_DATASET_PATH_H_
