#include "common/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace microgpt {
namespace {

constexpr absl::string_view kConfigKey = "microgpt.config";
constexpr absl::string_view kVocabKey = "microgpt.vocab";
constexpr absl::string_view kStepKey = "microgpt.step";
constexpr absl::string_view kLossKey = "microgpt.loss";
constexpr absl::string_view kFormatKey = "microgpt.format";
constexpr absl::string_view kValLossKey = "microgpt.val_loss";
constexpr absl::string_view kAdamStepKey = "microgpt.adam_step";
constexpr absl::string_view kDataEpochKey = "microgpt.data_epoch";
constexpr absl::string_view kDataCursorKey = "microgpt.data_cursor";
constexpr absl::string_view kRngStateKey = "microgpt.rng_state";
constexpr absl::string_view kDatasetKey = "microgpt.dataset_sha256";
constexpr absl::string_view kMomentPrefix[2] = {"adam.m.", "adam.v."};
constexpr absl::string_view kDataOrderName = "data.order";

absl::Status Invalid(absl::string_view file, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", message));
}

// The value of a required metadata entry.
absl::StatusOr<const std::string*> Metadata(const SafetensorsFile& file,
                                            absl::string_view file_name,
                                            absl::string_view key) {
  const std::string* value = file.FindMetadata(key);
  if (value == nullptr) {
    return Invalid(file_name, absl::StrCat("no metadata \"", key, "\""));
  }
  return value;
}

// A count as Serialize writes it: decimal digits, no sign, no leading zero.
absl::StatusOr<int64_t> ParseCount(const SafetensorsFile& file,
                                   absl::string_view file_name,
                                   absl::string_view key) {
  MICROGPT_ASSIGN_OR_RETURN(const std::string* text,
                            Metadata(file, file_name, key));
  int64_t value = 0;
  const bool canonical =
      !text->empty() && (*text == "0" || (*text)[0] != '0') &&
      text->find_first_not_of("0123456789") == std::string::npos;
  if (!canonical || !absl::SimpleAtoi(*text, &value)) {
    return Invalid(file_name, absl::StrCat("metadata \"", key,
                                           "\" is not a non-negative integer"));
  }
  return value;
}

// Shortest decimal that reads back as the same double ("2.31", "nan").
std::string FormatDouble(double value) {
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (result.ec != std::errc()) return absl::StrFormat("%.17g", value);
  return std::string(buffer, result.ptr);
}

bool ParseDouble(absl::string_view text, double* value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  const std::from_chars_result result =
      std::from_chars(text.data(), end, *value);
  return result.ec == std::errc() && result.ptr == end;
}

std::string FormatRngState(const Rng::State& state) {
  return absl::StrFormat("%016x %016x %016x %016x", state[0], state[1],
                         state[2], state[3]);
}

bool ParseRngState(absl::string_view text, Rng::State* state) {
  // Four words of 16 lowercase hex digits, separated by single spaces.
  if (text.size() != 4 * 16 + 3) return false;
  for (int word = 0; word < 4; ++word) {
    if (word > 0 && text[17 * word - 1] != ' ') return false;
    uint64_t value = 0;
    for (int i = 0; i < 16; ++i) {
      const char c = text[17 * word + i];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else {
        return false;
      }
      value = (value << 4) | static_cast<uint64_t>(digit);
    }
    (*state)[word] = value;
  }
  return true;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Checks that `file` has tensor prefix+name, F32 [rows, cols], for every
// tensor of `layout`.
absl::Status CheckParameterTensors(const SafetensorsFile& file,
                                   absl::string_view file_name,
                                   absl::string_view prefix,
                                   const ParameterLayout& layout) {
  for (const TensorSpec& spec : layout.tensors()) {
    const std::string name = absl::StrCat(prefix, spec.name);
    const SafetensorsTensor* tensor = file.Find(name);
    if (tensor == nullptr) {
      return Invalid(file_name,
                     absl::StrCat("tensor \"", name, "\" is missing"));
    }
    if (tensor->dtype != Dtype::kF32) {
      return Invalid(file_name,
                     absl::StrCat("tensor \"", name, "\" has dtype ",
                                  DtypeName(tensor->dtype), ", expected F32"));
    }
    const std::vector<int64_t> expected = {spec.rows, spec.cols};
    if (tensor->shape != expected) {
      return Invalid(file_name,
                     absl::StrCat("tensor \"", name, "\" has shape ",
                                  ShapeString(tensor->shape), ", expected ",
                                  ShapeString(expected)));
    }
  }
  return absl::OkStatus();
}

// The values of checked tensors prefix+name, in layout order.
std::vector<float> ReadParameterTensors(const SafetensorsFile& file,
                                        absl::string_view prefix,
                                        const ParameterLayout& layout) {
  std::vector<float> values(layout.total_size());
  for (const TensorSpec& spec : layout.tensors()) {
    const SafetensorsTensor* tensor =
        file.Find(absl::StrCat(prefix, spec.name));
    DecodeF32(tensor->data, values.data() + spec.offset);
  }
  return values;
}

// Fails naming a tensor of `file` that is not among the `expected` names
// (which all are in the file), if the file has more tensors than those.
absl::Status CheckNoOtherTensors(const SafetensorsFile& file,
                                 absl::string_view file_name,
                                 const std::vector<std::string>& expected) {
  if (file.tensors.size() == expected.size()) return absl::OkStatus();
  std::vector<std::string> sorted = expected;
  std::sort(sorted.begin(), sorted.end());
  for (const SafetensorsTensor& tensor : file.tensors) {
    if (!std::binary_search(sorted.begin(), sorted.end(), tensor.name)) {
      return Invalid(file_name,
                     absl::StrCat("unexpected tensor \"",
                                  absl::CHexEscape(tensor.name), "\""));
    }
  }
  return Invalid(file_name, "unexpected tensors");  // not reached
}

}  // namespace

std::string SerializeModel(const ModelCheckpoint& checkpoint) {
  // Only what ParseModel accepts; an empty string is never a valid file.
  if (!checkpoint.config.Validate().ok() ||
      checkpoint.tokenizer.vocab_size() != checkpoint.config.vocab_size ||
      checkpoint.step < 0) {
    return "";
  }
  const ParameterLayout layout(checkpoint.config);
  if (checkpoint.parameters.size() != layout.total_size()) return "";
  SafetensorsWriter writer;
  for (const TensorSpec& spec : layout.tensors()) {
    if (!writer
             .AddF32(
                 spec.name, {spec.rows, spec.cols},
                 absl::MakeConstSpan(checkpoint.parameters.data() + spec.offset,
                                     spec.size()))
             .ok()) {
      return "";
    }
  }
  for (const auto& [key, value] :
       {std::pair{kConfigKey, checkpoint.config.ToJson()},
        std::pair{kVocabKey, checkpoint.tokenizer.ToJson()},
        std::pair{kStepKey, absl::StrCat(checkpoint.step)},
        std::pair{kLossKey, FormatDouble(checkpoint.loss)}}) {
    if (!writer.AddMetadata(key, value).ok()) return "";
  }
  // Only what differs from a checkpoint of before the formats, which a
  // reader of that time then still loads the same way.
  if (checkpoint.format != DatasetFormat::kDocuments &&
      !writer
           .AddMetadata(kFormatKey,
                        std::string(DatasetFormatName(checkpoint.format)))
           .ok()) {
    return "";
  }
  if (checkpoint.val_loss.has_value() &&
      !writer.AddMetadata(kValLossKey, FormatDouble(*checkpoint.val_loss))
           .ok()) {
    return "";
  }
  return writer.Serialize();
}

namespace {

// What a model file's metadata records of its training.
absl::StatusOr<ModelRecord> Record(const SafetensorsFile& file,
                                   absl::string_view file_name) {
  ModelRecord recorded;
  MICROGPT_ASSIGN_OR_RETURN(recorded.step,
                            ParseCount(file, file_name, kStepKey));
  MICROGPT_ASSIGN_OR_RETURN(const std::string* loss_text,
                            Metadata(file, file_name, kLossKey));
  if (!ParseDouble(*loss_text, &recorded.loss)) {
    return Invalid(file_name,
                   absl::StrCat("metadata \"", kLossKey, "\" is not a number"));
  }
  if (const std::string* format = file.FindMetadata(kFormatKey)) {
    absl::StatusOr<DatasetFormat> parsed = ParseDatasetFormat(*format);
    if (!parsed.ok()) {
      return Invalid(file_name, absl::StrCat("metadata \"", kFormatKey, "\": ",
                                             parsed.status().message()));
    }
    recorded.format = *parsed;
  }
  if (const std::string* val_loss = file.FindMetadata(kValLossKey)) {
    double value;
    if (!ParseDouble(*val_loss, &value)) {
      return Invalid(file_name, absl::StrCat("metadata \"", kValLossKey,
                                             "\" is not a number"));
    }
    recorded.val_loss = value;
  }
  return recorded;
}

}  // namespace

absl::StatusOr<ModelRecord> ReadModelRecord(const std::string& path) {
  SafetensorsFile header;  // the metadata alone
  MICROGPT_ASSIGN_OR_RETURN(header.metadata, ReadSafetensorsMetadata(path));
  return Record(header, path);
}

absl::StatusOr<ModelCheckpoint> ParseModel(absl::string_view bytes) {
  constexpr absl::string_view kFile = "model checkpoint";
  absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(kFile, ": ", parsed.status().message()));
  }
  const SafetensorsFile& file = *parsed;

  MICROGPT_ASSIGN_OR_RETURN(const std::string* config_json,
                            Metadata(file, kFile, kConfigKey));
  absl::StatusOr<ModelConfig> config = ModelConfig::FromJson(*config_json);
  if (!config.ok()) {
    return Invalid(kFile,
                   absl::StrCat(kConfigKey, ": ", config.status().message()));
  }
  MICROGPT_ASSIGN_OR_RETURN(const std::string* vocab_json,
                            Metadata(file, kFile, kVocabKey));
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromJson(*vocab_json);
  if (!tokenizer.ok()) {
    return Invalid(kFile,
                   absl::StrCat(kVocabKey, ": ", tokenizer.status().message()));
  }
  if (tokenizer->vocab_size() != config->vocab_size) {
    return Invalid(
        kFile, absl::StrCat("the vocabulary has ", tokenizer->chars().size(),
                            " characters but vocab_size is ",
                            config->vocab_size, " (expected ",
                            config->vocab_size - 1, " characters and BOS)"));
  }
  MICROGPT_ASSIGN_OR_RETURN(const ModelRecord recorded, Record(file, kFile));

  const ParameterLayout layout(*config);
  MICROGPT_RETURN_IF_ERROR(CheckParameterTensors(file, kFile, "", layout));
  std::vector<std::string> expected;
  for (const TensorSpec& spec : layout.tensors()) expected.push_back(spec.name);
  MICROGPT_RETURN_IF_ERROR(CheckNoOtherTensors(file, kFile, expected));
  return ModelCheckpoint{*config,
                         *std::move(tokenizer),
                         ReadParameterTensors(file, "", layout),
                         recorded.step,
                         recorded.loss,
                         recorded.format,
                         recorded.val_loss};
}

std::string SerializeOptimizer(const OptimizerCheckpoint& state,
                               const ParameterLayout& layout) {
  // Only what ParseOptimizer accepts; an empty string is never a valid file.
  const int64_t num_documents = static_cast<int64_t>(state.data_order.size());
  if (state.m.size() != layout.total_size() ||
      state.v.size() != layout.total_size() || state.adam_step < 0 ||
      state.data_epoch < 0 || state.data_cursor < 0 ||
      state.data_cursor > num_documents) {
    return "";
  }
  for (int32_t index : state.data_order) {
    if (index < 0 || index >= num_documents) return "";
  }
  SafetensorsWriter writer;
  for (int moment = 0; moment < 2; ++moment) {
    const std::vector<float>& values = moment == 0 ? state.m : state.v;
    for (const TensorSpec& spec : layout.tensors()) {
      if (!writer
               .AddF32(absl::StrCat(kMomentPrefix[moment], spec.name),
                       {spec.rows, spec.cols},
                       absl::MakeConstSpan(values.data() + spec.offset,
                                           spec.size()))
               .ok()) {
        return "";
      }
    }
  }
  if (!writer.AddI32(kDataOrderName, {num_documents}, state.data_order).ok()) {
    return "";
  }
  for (const auto& [key, value] :
       {std::pair{kAdamStepKey, absl::StrCat(state.adam_step)},
        std::pair{kDataEpochKey, absl::StrCat(state.data_epoch)},
        std::pair{kDataCursorKey, absl::StrCat(state.data_cursor)},
        std::pair{kRngStateKey, FormatRngState(state.rng_state)},
        std::pair{kDatasetKey, state.dataset_sha256}}) {
    if (!writer.AddMetadata(key, value).ok()) return "";
  }
  return writer.Serialize();
}

absl::StatusOr<OptimizerCheckpoint> ParseOptimizer(
    absl::string_view bytes, const ParameterLayout& layout) {
  constexpr absl::string_view kFile = "optimizer checkpoint";
  absl::StatusOr<SafetensorsFile> parsed = ParseSafetensors(bytes);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(kFile, ": ", parsed.status().message()));
  }
  const SafetensorsFile& file = *parsed;

  OptimizerCheckpoint state;
  MICROGPT_ASSIGN_OR_RETURN(state.adam_step,
                            ParseCount(file, kFile, kAdamStepKey));
  MICROGPT_ASSIGN_OR_RETURN(state.data_epoch,
                            ParseCount(file, kFile, kDataEpochKey));
  MICROGPT_ASSIGN_OR_RETURN(state.data_cursor,
                            ParseCount(file, kFile, kDataCursorKey));
  MICROGPT_ASSIGN_OR_RETURN(const std::string* rng_text,
                            Metadata(file, kFile, kRngStateKey));
  if (!ParseRngState(*rng_text, &state.rng_state)) {
    return Invalid(kFile, absl::StrCat("metadata \"", kRngStateKey,
                                       "\" is not four 16-digit hex words"));
  }
  MICROGPT_ASSIGN_OR_RETURN(const std::string* dataset,
                            Metadata(file, kFile, kDatasetKey));
  state.dataset_sha256 = *dataset;

  for (absl::string_view prefix : kMomentPrefix) {
    MICROGPT_RETURN_IF_ERROR(
        CheckParameterTensors(file, kFile, prefix, layout));
  }
  const SafetensorsTensor* order = file.Find(kDataOrderName);
  if (order == nullptr) {
    return Invalid(kFile,
                   absl::StrCat("tensor \"", kDataOrderName, "\" is missing"));
  }
  if (order->dtype != Dtype::kI32 || order->shape.size() != 1) {
    return Invalid(kFile, absl::StrCat("tensor \"", kDataOrderName,
                                       "\" must be I32 [num_documents], not ",
                                       DtypeName(order->dtype), " ",
                                       ShapeString(order->shape)));
  }
  std::vector<std::string> expected = {std::string(kDataOrderName)};
  for (absl::string_view prefix : kMomentPrefix) {
    for (const TensorSpec& spec : layout.tensors()) {
      expected.push_back(absl::StrCat(prefix, spec.name));
    }
  }
  MICROGPT_RETURN_IF_ERROR(CheckNoOtherTensors(file, kFile, expected));

  const int64_t num_documents = order->shape[0];
  state.data_order.resize(static_cast<size_t>(num_documents));
  DecodeI32(order->data, state.data_order.data());
  for (size_t i = 0; i < state.data_order.size(); ++i) {
    if (state.data_order[i] < 0 || state.data_order[i] >= num_documents) {
      return Invalid(
          kFile,
          absl::StrCat("data.order[", i, "] = ", state.data_order[i],
                       " is not a document index in [0, ", num_documents, ")"));
    }
  }
  if (state.data_cursor > num_documents) {
    return Invalid(kFile, absl::StrCat("data_cursor ", state.data_cursor,
                                       " is past the end of data.order (",
                                       num_documents, " documents)"));
  }
  state.m = ReadParameterTensors(file, kMomentPrefix[0], layout);
  state.v = ReadParameterTensors(file, kMomentPrefix[1], layout);
  return state;
}

}  // namespace microgpt
