// libFuzzer target: Generate and Score request validation
// (ValidateGenerateRequest, then MakeSequenceSpecs; ValidateScoreRequest,
// then MakeScoreSpecs). The input is parsed as a serialised
// microgpt.v1.GenerateRequest and as a ScoreRequest, each validated against a
// tiny model; every accepted request must satisfy the documented limits.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "fuzz/fuzz_util.h"
#include "generator/model_manager.h"
#include "generator/request_validation.h"
#include "google/protobuf/stubs/logging.h"
#include "microgpt/v1/microgpt.pb.h"

namespace {

std::shared_ptr<const microgpt::ServableModel> TinyServable() {
  using namespace microgpt;
  ModelCheckpoint checkpoint = fuzz::TinyCheckpoint();
  absl::StatusOr<Model> model =
      Model::FromParameters(checkpoint.config, checkpoint.parameters);
  if (!model.ok()) __builtin_trap();
  auto servable = std::make_shared<ServableModel>(
      ServableModel{"m", 1, checkpoint.step, checkpoint.loss, std::move(*model),
                    checkpoint.tokenizer});
  return servable;
}

}  // namespace

// Invalid UTF-8 in string fields is logged by protobuf on every parse: mute.
void IgnoreProtobufLog(google::protobuf::LogLevel, const char*, int,
                       const std::string&) {}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(IgnoreProtobufLog);
  return 0;
}

// A ScoreRequest: accepted ones are 1..kMaxScoreTexts texts of the
// vocabulary's tokens within the documents model's block.
static void FuzzScore(
    const uint8_t* data, size_t size,
    const std::shared_ptr<const microgpt::ServableModel>& servable) {
  using namespace microgpt;
  v1::ScoreRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  if (absl::Status status = ValidateScoreRequest(request); !status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return;
  }
  absl::StatusOr<std::vector<SequenceSpec>> specs =
      MakeScoreSpecs(request, servable);
  if (!specs.ok()) {
    if (specs.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return;
  }
  const ModelConfig& config = servable->model.config();
  if (specs->empty() || static_cast<int>(specs->size()) > kMaxScoreTexts)
    __builtin_trap();
  for (const SequenceSpec& spec : *specs) {
    if (!spec.score ||
        static_cast<int>(spec.prompt.size()) >= config.block_size)
      __builtin_trap();
    for (int id : spec.prompt) {
      if (id < 0 || id >= config.vocab_size) __builtin_trap();
    }
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  static const auto* const servable =
      new std::shared_ptr<const ServableModel>(TinyServable());
  FuzzScore(data, size, *servable);
  v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  // The checks before the model lookup, as the service runs them.
  if (absl::Status status = ValidateGenerateRequest(request); !status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  if (request.prompt().size() > static_cast<size_t>(kMaxPromptBytes))
    __builtin_trap();
  absl::StatusOr<std::vector<SequenceSpec>> specs = MakeSequenceSpecs(
      request, *servable, /*random_seed=*/42, kDefaultMaxTokensLimit);
  if (!specs.ok()) {
    if (specs.status().code() != absl::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return 0;
  }
  const ModelConfig& config = (*servable)->model.config();
  if (specs->empty() || static_cast<int>(specs->size()) > kMaxSamplesPerRequest)
    __builtin_trap();
  for (const SequenceSpec& spec : *specs) {
    if (static_cast<int>(spec.prompt.size()) > config.block_size - 1)
      __builtin_trap();
    if (spec.max_tokens < 0 || spec.max_tokens > config.block_size)
      __builtin_trap();
    for (int id : spec.prompt) {
      if (id < 0 || id >= config.vocab_size) __builtin_trap();
    }
    // The generation contract's fields, within their limits: nothing can
    // make a stream unbounded or an allocation grow with the request.
    if (spec.stop.size() > static_cast<size_t>(kMaxStopSequences))
      __builtin_trap();
    for (const std::vector<int>& stop : spec.stop) {
      if (stop.empty() || stop.size() > static_cast<size_t>(kMaxStopBytes))
        __builtin_trap();
      for (int id : stop) {
        if (id < 0 || id >= config.vocab_size) __builtin_trap();
      }
    }
    if (spec.min_tokens < 0 || spec.min_tokens > config.block_size)
      __builtin_trap();
    if (spec.time_limit != absl::InfiniteDuration() &&
        (spec.time_limit <= absl::ZeroDuration() ||
         spec.time_limit > absl::Milliseconds(kMaxTimeLimitMs)))
      __builtin_trap();
    const SamplingParams& sampling = spec.sampling;
    if (!ValidateSamplingParams(sampling, config.vocab_size).ok())
      __builtin_trap();
    if (sampling.logit_bias.size() > static_cast<size_t>(config.vocab_size))
      __builtin_trap();
  }
  return 0;
}
