// The published versions in a checkpoint store, as ListCheckpoints reports
// them: model, version, what the version's model metadata records of its
// training (step, loss, format, validation loss), and its directory.
//
//   auto checkpoints = ListCheckpointInfos(store, /*model=*/"");  // all models
#ifndef MICROGPT_TRAINER_CHECKPOINT_LISTING_H_
#define MICROGPT_TRAINER_CHECKPOINT_LISTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/checkpoint.h"
#include "common/checkpoint_store.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// The record of a published version, read from the header of its
// model.safetensors alone (a few KiB, whatever the model's size). Falls back
// to a full, verified CheckpointStore::LoadModel when the header does not
// hold them.
absl::StatusOr<ModelRecord> ReadVersionMetadata(const CheckpointStore& store,
                                                absl::string_view model,
                                                int64_t version);

// A version as the API reports it (ListCheckpoints, WatchCheckpoints, the
// checkpoint_published event): its record and its directory in `store`.
v1::CheckpointInfo CheckpointInfoOf(const CheckpointStore& store,
                                    absl::string_view model, int64_t version,
                                    const ModelRecord& record);

// Checkpoints of `model` (every model when empty), by model name, then version
// ascending. A model without a directory has none (an empty list, not an
// error); INVALID_ARGUMENT for an invalid name. A version whose metadata
// cannot be read is left out with a warning in the log.
absl::StatusOr<std::vector<v1::CheckpointInfo>> ListCheckpointInfos(
    const CheckpointStore& store, absl::string_view model);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_CHECKPOINT_LISTING_H_
