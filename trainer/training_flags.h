// The flags of a training request, shared by `microgpt-trainer train` and
// `microgpt train` so that both take the same names with the same meaning
// (each binary adds its own --model, --data and --seed). A flag left at its
// zero value leaves the request field unset: the trainer's default applies.
//
//   v1::StartTrainingRequest request;
//   absl::Status status = TrainingRequestFromFlags(&request);
#ifndef MICROGPT_TRAINER_TRAINING_FLAGS_H_
#define MICROGPT_TRAINER_TRAINING_FLAGS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// The flags below as usage text lines, for both train commands' usage.
inline constexpr absl::string_view kTrainingFlagsUsage =
    "      [--format documents|text --val_fraction F --eval_every N\n"
    "       --steps N --batch_size N --n_embd N --n_head N --n_layer N\n"
    "       --block_size N --lr X --lr_schedule linear|cosine --warmup_steps "
    "N\n"
    "       --min_lr X --grad_clip X --init_std X --init_from MODEL[:VERSION]\n"
    "       --seed N --checkpoint_every N --resume --resume_if_exists\n"
    "       --replace --discard_on_cancel";

// Sets the request's sizes, steps, batch, optimiser, schedule, format,
// validation and init_from fields from the flags. INVALID_ARGUMENT for a
// --format or --lr_schedule that is not one of the names.
absl::Status TrainingRequestFromFlags(v1::StartTrainingRequest* request);

}  // namespace microgpt

#endif  // MICROGPT_TRAINER_TRAINING_FLAGS_H_
