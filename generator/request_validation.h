// Validation of Generator requests, in two steps: ValidateGenerateRequest
// checks what needs no model (before the model is looked up), and
// MakeSequenceSpecs turns the request into the sequences it asks for on one
// model version. Both fail with INVALID_ARGUMENT naming the offending field
// and its limit. ListModelsRequest has no fields to check.
//
//   MICROGPT_RETURN_IF_ERROR(ValidateGenerateRequest(request));
//   ... servable = models->Get(request.model(), request.version());
//   absl::StatusOr<std::vector<SequenceSpec>> specs =
//       MakeSequenceSpecs(request, servable, seed, max_tokens_limit);
#ifndef MICROGPT_GENERATOR_REQUEST_VALIDATION_H_
#define MICROGPT_GENERATOR_REQUEST_VALIDATION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "generator/model_manager.h"
#include "generator/scheduler.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

// Largest num_samples of one request.
inline constexpr int kMaxSamplesPerRequest = 64;
// Temperature when the request leaves it unset (the reference).
inline constexpr float kDefaultTemperature = 0.5f;
// Longest prompt in bytes: block_size - 1 characters of at most 4 UTF-8
// bytes each for the largest block_size (a text model's prompt may be longer
// than its block_size, up to this). Checked before the prompt is tokenized,
// so an oversized one costs nothing.
inline constexpr int kMaxPromptBytes = 4 * kMaxBlockSize;
// Default of GeneratorServiceOptions::max_tokens_limit (--max_tokens_limit).
inline constexpr int kDefaultMaxTokensLimit = 4096;
// Stop sequences of one request, and bytes of one.
inline constexpr int kMaxStopSequences = 8;
inline constexpr int kMaxStopBytes = 64;
// Largest time_limit_ms: an hour.
inline constexpr int kMaxTimeLimitMs = 3'600'000;
// Match attempts of the search that checks a regex can match at all
// (RegexMatcher::CheckSatisfiable): it bounds a request's validation time.
inline constexpr int64_t kRegexSearchBudget = 2000;

// The checks that need no model: model is empty or a valid model name
// (ValidateModelName: no path separators), the prompt has at most
// kMaxPromptBytes bytes.
absl::Status ValidateGenerateRequest(const v1::GenerateRequest& request);

// The sequences a request asks for on `servable`, or INVALID_ARGUMENT naming
// the offending field. `random_seed` is used when the request has no seed;
// sample i gets seed + i. max_tokens is bounded by `max_tokens_limit` (>= 1)
// and, for a documents model, by block_size; 0 means up to those bounds
// (the specs then carry the limit when it is the tighter one). A documents
// model's prompt has at most block_size - 1 characters, a text model's any
// number (up to kMaxPromptBytes). Also: the shaping fields (logit_bias keys
// one character of the vocabulary or "" for BOS; the bounds of
// ValidateSamplingParams), stop (at most kMaxStopSequences strings of 1 to
// kMaxStopBytes bytes of the vocabulary's characters), min_tokens (at most
// the sample's max_tokens), time_limit_ms (at most kMaxTimeLimitMs), regex
// (one PCRE2 compiles, of at most kMaxRegexBytes, that some text of the
// model's characters within max_tokens matches, as far as a search of
// kRegexSearchBudget attempts tells).
absl::StatusOr<std::vector<SequenceSpec>> MakeSequenceSpecs(
    const v1::GenerateRequest& request,
    const std::shared_ptr<const ServableModel>& servable, uint64_t random_seed,
    int max_tokens_limit);

// Largest number of texts of one ScoreRequest.
inline constexpr int kMaxScoreTexts = 64;

// ScoreRequest: model as in ValidateGenerateRequest (checked by the first),
// 1..kMaxScoreTexts texts of at most kMaxPromptBytes bytes of the model's
// characters (a documents model's at most block_size - 1 of them),
// top_logprobs in [0, vocab_size]. One scoring SequenceSpec per text, in
// order; INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateScoreRequest(const v1::ScoreRequest& request);
absl::StatusOr<std::vector<SequenceSpec>> MakeScoreSpecs(
    const v1::ScoreRequest& request,
    const std::shared_ptr<const ServableModel>& servable);

}  // namespace microgpt

#endif  // MICROGPT_GENERATOR_REQUEST_VALIDATION_H_
