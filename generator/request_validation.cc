#include "generator/request_validation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint_store.h"

namespace microgpt {

absl::Status ValidateGenerateRequest(const v1::GenerateRequest& request) {
  if (!request.model().empty()) {
    if (absl::Status status = ValidateModelName(request.model());
        !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: ", status.message()));
    }
  }
  if (request.prompt().size() > static_cast<size_t>(kMaxPromptBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt has ", request.prompt().size(),
                     " bytes, more than the limit of ", kMaxPromptBytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SequenceSpec>> MakeSequenceSpecs(
    const v1::GenerateRequest& request,
    const std::shared_ptr<const ServableModel>& servable, uint64_t random_seed,
    int max_tokens_limit) {
  const ModelConfig& config = servable->model.config();
  SamplingParams sampling;
  sampling.temperature =
      request.has_temperature() ? request.temperature() : kDefaultTemperature;
  if (request.has_top_p()) sampling.top_p = request.top_p();
  sampling.top_k = request.top_k();
  sampling.top_logprobs = request.top_logprobs();
  if (absl::Status status = ValidateSamplingParams(sampling, config.vocab_size);
      !status.ok()) {
    return status;
  }
  const bool text = servable->format == DatasetFormat::kText;
  if (!text &&
      (request.max_tokens() < 0 || request.max_tokens() > config.block_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens must be in [0, block_size = ", config.block_size,
        "] (0 = up to block_size), got ", request.max_tokens()));
  }
  if (request.max_tokens() < 0 || request.max_tokens() > max_tokens_limit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be in [0, ", max_tokens_limit,
                     "] (the server's --max_tokens_limit; 0 = up to it), got ",
                     request.max_tokens()));
  }
  // A text sample has no other end than BOS; a documents one ends at
  // block_size, which may be beyond the limit.
  const int max_tokens = request.max_tokens() == 0 &&
                                 (text || max_tokens_limit < config.block_size)
                             ? max_tokens_limit
                             : request.max_tokens();
  if (request.num_samples() < 0 ||
      request.num_samples() > kMaxSamplesPerRequest) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_samples must be in [0, ", kMaxSamplesPerRequest,
                     "] (0 = 1), got ", request.num_samples()));
  }
  absl::StatusOr<std::vector<int>> prompt =
      servable->tokenizer.Encode(request.prompt());
  if (!prompt.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", prompt.status().message()));
  }
  if (!text && static_cast<int>(prompt->size()) > config.block_size - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt has ", prompt->size(), " characters; at most block_size - 1 = ",
        config.block_size - 1, " are allowed"));
  }
  const uint64_t seed = request.has_seed() ? request.seed() : random_seed;
  const int num_samples = std::max(1, request.num_samples());
  std::vector<SequenceSpec> specs(num_samples);
  for (int i = 0; i < num_samples; ++i) {
    specs[i].servable = servable;
    specs[i].prompt = *prompt;
    specs[i].sampling = sampling;
    specs[i].seed = seed + static_cast<uint64_t>(i);
    specs[i].max_tokens = max_tokens;
  }
  return specs;
}

}  // namespace microgpt
