#include "generator/request_validation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint_store.h"
#include "common/regex_constraint.h"
#include "common/status_macros.h"

namespace microgpt {

namespace {

// A request's model: empty (the only model served) or a valid name.
absl::Status ValidateModelField(const std::string& model) {
  if (model.empty()) return absl::OkStatus();
  if (absl::Status status = ValidateModelName(model); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGenerateRequest(const v1::GenerateRequest& request) {
  MICROGPT_RETURN_IF_ERROR(ValidateModelField(request.model()));
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
  const Tokenizer& tokenizer = servable->tokenizer;
  SamplingParams sampling;
  sampling.temperature =
      request.has_temperature() ? request.temperature() : kDefaultTemperature;
  if (request.has_top_p()) sampling.top_p = request.top_p();
  sampling.top_k = request.top_k();
  sampling.min_p = request.min_p();
  sampling.top_logprobs = request.top_logprobs();
  if (request.has_repetition_penalty()) {
    sampling.repetition_penalty = request.repetition_penalty();
  }
  sampling.presence_penalty = request.presence_penalty();
  sampling.frequency_penalty = request.frequency_penalty();
  for (const auto& [key, bias] : request.logit_bias()) {
    if (key.empty()) {
      sampling.logit_bias.emplace_back(tokenizer.bos(), bias);
      continue;
    }
    absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(key);
    if (!ids.ok() || ids->size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias: the key \"", absl::CHexEscape(key.substr(0, 16)),
          key.size() > 16 ? "..." : "",
          "\" must be one character of the model's vocabulary, or \"\" for "
          "BOS"));
    }
    sampling.logit_bias.emplace_back(ids->front(), bias);
  }
  // A map's order is unspecified on the wire.
  std::sort(sampling.logit_bias.begin(), sampling.logit_bias.end());
  if (absl::Status status = ValidateSamplingParams(sampling, config.vocab_size);
      !status.ok()) {
    return status;
  }
  if (request.stop_size() > kMaxStopSequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop has ", request.stop_size(),
                     " strings, more than the limit of ", kMaxStopSequences));
  }
  std::vector<std::vector<int>> stop;
  for (int i = 0; i < request.stop_size(); ++i) {
    const std::string& text = request.stop(i);
    if (text.empty() || text.size() > static_cast<size_t>(kMaxStopBytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop[", i, "] must have 1 to ", kMaxStopBytes,
                       " bytes, got ", text.size()));
    }
    absl::StatusOr<std::vector<int>> ids = tokenizer.Encode(text);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stop[", i, "]: ", ids.status().message(),
          " (a stop sequence the model cannot generate never matches)"));
    }
    stop.push_back(*std::move(ids));
  }
  if (request.time_limit_ms() < 0 ||
      request.time_limit_ms() > kMaxTimeLimitMs) {
    return absl::InvalidArgumentError(
        absl::StrCat("time_limit_ms must be in [0, ", kMaxTimeLimitMs,
                     "] (0 = no limit), got ", request.time_limit_ms()));
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
  // The most tokens a sample can have: max_tokens, or (0) a documents
  // model's block_size.
  const int most_tokens = max_tokens > 0 ? max_tokens : config.block_size;
  if (request.min_tokens() < 0 || request.min_tokens() > most_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_tokens must be in [0, ", most_tokens,
        "] (at most the sample's max_tokens), got ", request.min_tokens()));
  }
  std::shared_ptr<const RegexConstraint> regex;
  if (!request.regex().empty()) {
    absl::StatusOr<std::shared_ptr<const RegexConstraint>> compiled =
        RegexConstraint::Compile(request.regex());
    if (!compiled.ok()) return compiled.status();
    regex = *std::move(compiled);
    // A sample has at most most_tokens tokens, BOS (the end) among them.
    RegexMatcher matcher(regex, tokenizer.Texts());
    if (absl::Status status =
            matcher.CheckSatisfiable(most_tokens - 1, kRegexSearchBudget);
        !status.ok()) {
      return status;
    }
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
    specs[i].stop = stop;
    specs[i].include_stop = request.include_stop();
    specs[i].min_tokens = request.min_tokens();
    if (request.time_limit_ms() > 0) {
      specs[i].time_limit = absl::Milliseconds(request.time_limit_ms());
    }
    specs[i].regex = regex;
    specs[i].prompt_logprobs = request.prompt_logprobs();
  }
  return specs;
}

absl::Status ValidateScoreRequest(const v1::ScoreRequest& request) {
  MICROGPT_RETURN_IF_ERROR(ValidateModelField(request.model()));
  if (request.texts_size() < 1 || request.texts_size() > kMaxScoreTexts) {
    return absl::InvalidArgumentError(
        absl::StrCat("texts must have 1 to ", kMaxScoreTexts, " texts, got ",
                     request.texts_size()));
  }
  for (int i = 0; i < request.texts_size(); ++i) {
    if (request.texts(i).size() > static_cast<size_t>(kMaxPromptBytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("texts[", i, "] has ", request.texts(i).size(),
                       " bytes, more than the limit of ", kMaxPromptBytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SequenceSpec>> MakeScoreSpecs(
    const v1::ScoreRequest& request,
    const std::shared_ptr<const ServableModel>& servable) {
  const ModelConfig& config = servable->model.config();
  SamplingParams sampling;
  sampling.top_logprobs = request.top_logprobs();
  MICROGPT_RETURN_IF_ERROR(ValidateSamplingParams(sampling, config.vocab_size));
  const bool text = servable->format == DatasetFormat::kText;
  std::vector<SequenceSpec> specs(request.texts_size());
  for (int i = 0; i < request.texts_size(); ++i) {
    absl::StatusOr<std::vector<int>> tokens =
        servable->tokenizer.Encode(request.texts(i));
    if (!tokens.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("texts[", i, "]: ", tokens.status().message()));
    }
    if (!text && static_cast<int>(tokens->size()) > config.block_size - 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "texts[", i, "] has ", tokens->size(),
          " characters; a documents model scores at most block_size - 1 = ",
          config.block_size - 1));
    }
    specs[i].servable = servable;
    specs[i].prompt = *std::move(tokens);
    specs[i].sampling = sampling;
    specs[i].score = true;
  }
  return specs;
}

}  // namespace microgpt
