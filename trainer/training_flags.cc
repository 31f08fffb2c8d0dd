#include "trainer/training_flags.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/dataset.h"
#include "server/dataset_format_proto.h"

ABSL_FLAG(std::string, format, "documents",
          "train: how the dataset is read: documents (one per line, each "
          "from BOS to BOS) or text (one character stream, newlines "
          "included).");
ABSL_FLAG(int64_t, steps, 0,
          "train: total steps, the lr schedule's horizon (0: 1000).");
ABSL_FLAG(int32_t, batch_size, 0,
          "train: documents or text windows per step (0: 1).");
ABSL_FLAG(int32_t, n_embd, 0, "train: embedding width (0: 16).");
ABSL_FLAG(int32_t, n_head, 0,
          "train: attention heads, dividing n_embd (0: 4).");
ABSL_FLAG(int32_t, n_layer, 0, "train: transformer layers (0: 1).");
ABSL_FLAG(int32_t, block_size, 0, "train: context length (0: 16).");
ABSL_FLAG(std::optional<float>, lr, std::nullopt,
          "train: Adam learning rate (default 0.01).");
ABSL_FLAG(std::string, lr_schedule, "linear",
          "train: linear (to 0 at the last step) or cosine (to --min_lr).");
ABSL_FLAG(int64_t, warmup_steps, 0,
          "train: steps of linear warmup before the schedule (0: none).");
ABSL_FLAG(std::optional<float>, min_lr, std::nullopt,
          "train: the cosine schedule's floor (default lr / 10).");
ABSL_FLAG(float, grad_clip, 0,
          "train: clip the gradient to this global norm (0: no clipping).");
ABSL_FLAG(std::optional<float>, init_std, std::nullopt,
          "train: standard deviation of the initial weights (default 0.08).");
ABSL_FLAG(float, val_fraction, 0,
          "train: fraction of the data held out for validation, in [0, 0.5] "
          "(text: the end of the text).");
ABSL_FLAG(int64_t, eval_every, 0,
          "train: validation loss every N steps, and at every publish (0: "
          "only at publishes).");
ABSL_FLAG(std::string, init_from, "",
          "train: start from the weights of MODEL or MODEL:VERSION, with a "
          "fresh optimizer (fine-tuning; the sizes are the model's).");
ABSL_FLAG(int64_t, checkpoint_every, 0,
          "train: publish a version every N steps (0: only at the end).");
ABSL_FLAG(bool, resume, false,
          "train: continue from the model's latest published version.");
ABSL_FLAG(bool, resume_if_exists, false,
          "train: --resume when the model has a version, else a new run (one "
          "command for a first run and its retries).");
ABSL_FLAG(bool, replace, false,
          "train: start a new lineage under a model that has versions; its "
          "versions number on from the latest, which stays served until the "
          "new run's first publish.");
ABSL_FLAG(bool, discard_on_cancel, false,
          "train: when cancelled, publish nothing more (by default the step "
          "reached is published).");

namespace microgpt {

absl::Status TrainingRequestFromFlags(v1::StartTrainingRequest* request) {
  const absl::StatusOr<DatasetFormat> format =
      ParseDatasetFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", format.status().message()));
  }
  request->set_format(ToProto(*format));
  const std::string schedule = absl::GetFlag(FLAGS_lr_schedule);
  if (schedule == "linear") {
    request->set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_LINEAR);
  } else if (schedule == "cosine") {
    request->set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_COSINE);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lr_schedule must be linear or cosine, got \"", schedule, "\""));
  }
  // Sizes only when one is given: with --init_from they are the
  // checkpoint's, and a request that sets them is refused.
  v1::ModelConfig config;
  config.set_n_embd(absl::GetFlag(FLAGS_n_embd));
  config.set_n_head(absl::GetFlag(FLAGS_n_head));
  config.set_n_layer(absl::GetFlag(FLAGS_n_layer));
  config.set_block_size(absl::GetFlag(FLAGS_block_size));
  if (config.ByteSizeLong() > 0) *request->mutable_config() = config;
  request->set_steps(absl::GetFlag(FLAGS_steps));
  request->set_batch_size(absl::GetFlag(FLAGS_batch_size));
  if (auto lr = absl::GetFlag(FLAGS_lr)) request->set_learning_rate(*lr);
  request->set_warmup_steps(absl::GetFlag(FLAGS_warmup_steps));
  if (auto min_lr = absl::GetFlag(FLAGS_min_lr)) {
    request->set_min_learning_rate(*min_lr);
  }
  request->set_grad_clip(absl::GetFlag(FLAGS_grad_clip));
  if (auto init_std = absl::GetFlag(FLAGS_init_std)) {
    request->set_init_std(*init_std);
  }
  request->set_val_fraction(absl::GetFlag(FLAGS_val_fraction));
  request->set_eval_every(absl::GetFlag(FLAGS_eval_every));
  request->set_init_from(absl::GetFlag(FLAGS_init_from));
  request->set_checkpoint_every(absl::GetFlag(FLAGS_checkpoint_every));
  request->set_resume(absl::GetFlag(FLAGS_resume));
  request->set_resume_if_exists(absl::GetFlag(FLAGS_resume_if_exists));
  request->set_replace(absl::GetFlag(FLAGS_replace));
  request->set_discard_on_cancel(absl::GetFlag(FLAGS_discard_on_cancel));
  return absl::OkStatus();
}

}  // namespace microgpt
