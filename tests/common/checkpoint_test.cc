// Checkpoint files: bit-exact round trips, readability by an independent
// safetensors reader, and rejection of inconsistent files.
#include "common/checkpoint.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/status_matchers.h"

namespace microgpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER(IsError, "is an error") { return !arg.ok(); }

std::vector<uint32_t> Bits(const float* values, size_t n) {
  std::vector<uint32_t> bits(n);
  std::memcpy(bits.data(), values, n * sizeof(float));
  return bits;
}
std::vector<uint32_t> Bits(const std::vector<float>& values) {
  return Bits(values.data(), values.size());
}
uint64_t Bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float FloatFromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Random values plus the ones a lossy format would get wrong.
std::vector<float> TestValues(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(rng.Normal() * 0.08);
  const float special[] = {-0.0f,
                           FloatFromBits(0x00000001),  // smallest denormal
                           std::numeric_limits<float>::infinity(),
                           FloatFromBits(0x7FC12345),  // NaN with a payload
                           std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::lowest()};
  for (size_t i = 0; i < std::size(special) && i < n; ++i) {
    values[n - 1 - i] = special[i];
  }
  return values;
}

// A small model: 2 layers, n_embd 8, vocabulary "abcé" + BOS.
ModelCheckpoint TestModel() {
  const std::vector<std::string> docs = {"abc", "c\xC3\xA9"};
  Tokenizer tokenizer = Tokenizer::FromDocuments(docs);
  ModelConfig config;
  config.n_embd = 8;
  config.n_head = 2;
  config.n_layer = 2;
  config.block_size = 4;
  config.vocab_size = tokenizer.vocab_size();
  const size_t n = ParameterLayout(config).total_size();
  return ModelCheckpoint{config, std::move(tokenizer), TestValues(n, 1), 1000,
                         2.31};
}

OptimizerCheckpoint TestOptimizer(const ParameterLayout& layout) {
  OptimizerCheckpoint state;
  state.adam_step = 1000;
  state.m = TestValues(layout.total_size(), 2);
  state.v = TestValues(layout.total_size(), 3);
  state.data_order = {3, 0, 6, 1, 5, 2, 4};
  state.data_epoch = 3;
  state.data_cursor = 5;
  state.rng_state = {1, 0xFFFFFFFFFFFFFFFFULL, 0x0123456789ABCDEFULL, 0};
  state.dataset_sha256 =
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  return state;
}

// ----------------------------------------------------------------------
// An independent, minimal safetensors reader: what any other tool sees.

struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
struct RawFile {
  std::map<std::string, RawTensor> tensors;
  std::map<std::string, std::string> metadata;
};

void ReadRaw(const std::string& file, RawFile* raw) {
  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[i]);
  ASSERT_LE(n, file.size() - 8);
  const nlohmann::json header =
      nlohmann::json::parse(file.substr(8, n), nullptr, false);
  ASSERT_TRUE(header.is_object());
  const std::string buffer = file.substr(8 + n);
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, value] : info.items()) {
        ASSERT_TRUE(value.is_string()) << key;
        raw->metadata[key] = value.get<std::string>();
      }
      continue;
    }
    RawTensor& t = raw->tensors[name];
    ASSERT_TRUE(info["dtype"].is_string());
    t.dtype = info["dtype"].get<std::string>();
    for (const auto& dim : info["shape"]) t.shape.push_back(dim.get<int64_t>());
    const uint64_t begin = info["data_offsets"][0].get<uint64_t>();
    const uint64_t end = info["data_offsets"][1].get<uint64_t>();
    ASSERT_LE(begin, end);
    ASSERT_LE(end, buffer.size());
    t.bytes = buffer.substr(begin, end - begin);
  }
}

// Writes a RawFile back (with the project's writer, tested on its own).
std::string WriteRaw(const RawFile& raw) {
  SafetensorsWriter writer;
  for (const auto& [name, t] : raw.tensors) {
    Dtype dtype;
    EXPECT_TRUE(ParseDtype(t.dtype, &dtype)) << t.dtype;
    EXPECT_TRUE(writer.AddTensor(name, dtype, t.shape, t.bytes).ok()) << name;
  }
  for (const auto& [key, value] : raw.metadata) {
    EXPECT_TRUE(writer.AddMetadata(key, value).ok()) << key;
  }
  return writer.Serialize();
}

std::string Mutate(const std::string& file,
                   const std::function<void(RawFile&)>& mutate) {
  RawFile raw;
  ReadRaw(file, &raw);
  mutate(raw);
  return WriteRaw(raw);
}

// The parameter names and shapes of the test model, written out by hand.
std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedTensors() {
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"wte", {5, 8}}, {"wpe", {4, 8}}, {"lm_head", {5, 8}}};
  for (const char* layer : {"layer0.", "layer1."}) {
    for (const char* name : {"attn_wq", "attn_wk", "attn_wv", "attn_wo"}) {
      tensors.push_back({std::string(layer) + name, {8, 8}});
    }
    tensors.push_back({std::string(layer) + "mlp_fc1", {32, 8}});
    tensors.push_back({std::string(layer) + "mlp_fc2", {8, 32}});
  }
  return tensors;
}

// ------------------------------------------------------------------ model

TEST(ModelCheckpointTest, RoundTripIsBitExact) {
  const ModelCheckpoint model = TestModel();
  const std::string bytes = SerializeModel(model);
  ASSERT_FALSE(bytes.empty());
  const absl::StatusOr<ModelCheckpoint> back = ParseModel(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config, model.config);
  EXPECT_EQ(back->tokenizer, model.tokenizer);
  EXPECT_EQ(back->step, 1000);
  EXPECT_EQ(Bits(back->loss), Bits(2.31));
  EXPECT_EQ(Bits(back->parameters), Bits(model.parameters));
  // Deterministic: the same checkpoint gives the same bytes.
  EXPECT_EQ(SerializeModel(*back), bytes);
}

TEST(ModelCheckpointTest, LossRoundTripsExactly) {
  ModelCheckpoint model = TestModel();
  for (double loss :
       {2.31, static_cast<double>(2.3456f), 0.1, 1e-300, 3.0 / 7.0, 0.0, -0.0,
        12345678.9, std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::denorm_min()}) {
    model.loss = loss;
    const absl::StatusOr<ModelCheckpoint> back =
        ParseModel(SerializeModel(model));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(Bits(back->loss), Bits(loss)) << loss;
  }
  model.loss = std::nan("");
  const absl::StatusOr<ModelCheckpoint> back =
      ParseModel(SerializeModel(model));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(std::isnan(back->loss));
}

TEST(ModelCheckpointTest, ReadableByAnIndependentSafetensorsReader) {
  const ModelCheckpoint model = TestModel();
  RawFile raw;
  ASSERT_NO_FATAL_FAILURE(ReadRaw(SerializeModel(model), &raw));

  const auto expected = ExpectedTensors();
  std::set<std::string> names;
  for (const auto& [name, t] : raw.tensors) names.insert(name);
  std::set<std::string> expected_names;
  for (const auto& [name, shape] : expected) expected_names.insert(name);
  EXPECT_EQ(names, expected_names);

  // In the order of docs/model.md's table, the parameters are one buffer.
  size_t offset = 0;
  for (const auto& [name, shape] : expected) {
    const RawTensor& t = raw.tensors[name];
    EXPECT_EQ(t.dtype, "F32") << name;
    EXPECT_EQ(t.shape, shape) << name;
    const size_t n = static_cast<size_t>(shape[0] * shape[1]);
    ASSERT_EQ(t.bytes.size(), 4 * n) << name;
    // Little-endian float32, row-major.
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = 0;
      for (int b = 3; b >= 0; --b) {
        bits = (bits << 8) | static_cast<uint8_t>(t.bytes[4 * i + b]);
      }
      ASSERT_EQ(bits, Bits(&model.parameters[offset + i], 1)[0])
          << name << "[" << i << "]";
    }
    offset += n;
  }
  EXPECT_EQ(offset, model.parameters.size());

  std::set<std::string> keys;
  for (const auto& [key, value] : raw.metadata) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"microgpt.config", "microgpt.vocab",
                                         "microgpt.step", "microgpt.loss"}));
  EXPECT_EQ(nlohmann::json::parse(raw.metadata["microgpt.config"]),
            nlohmann::json::parse(R"({"n_embd":8,"n_head":2,"n_layer":2,)"
                                  R"("block_size":4,"vocab_size":5})"));
  EXPECT_EQ(nlohmann::json::parse(raw.metadata["microgpt.vocab"]),
            nlohmann::json::parse("[\"a\",\"b\",\"c\",\"\xC3\xA9\"]"));
  EXPECT_EQ(raw.metadata["microgpt.step"], "1000");
  EXPECT_EQ(raw.metadata["microgpt.loss"], "2.31");
}

TEST(ModelCheckpointTest, SerializeRefusesAnInconsistentCheckpoint) {
  ModelCheckpoint model = TestModel();
  model.parameters.pop_back();
  EXPECT_EQ(SerializeModel(model), "");
  model = TestModel();
  model.config.vocab_size = 6;  // the tokenizer has 5
  EXPECT_EQ(SerializeModel(model), "");
  model = TestModel();
  model.config.n_head = 3;
  EXPECT_EQ(SerializeModel(model), "");
  model = TestModel();
  model.step = -1;
  EXPECT_EQ(SerializeModel(model), "");
}

TEST(ModelCheckpointTest, RejectsTruncatedAndEmptyFiles) {
  const std::string bytes = SerializeModel(TestModel());
  EXPECT_THAT(ParseModel(""), StatusIs(absl::StatusCode::kDataLoss,
                                       HasSubstr("model checkpoint")));
  for (size_t n = 0; n < bytes.size(); n += 7) {
    EXPECT_THAT(ParseModel(bytes.substr(0, n)), IsError()) << n;
  }
  EXPECT_THAT(ParseModel(bytes.substr(0, bytes.size() - 1)),
              StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
}

TEST(ModelCheckpointTest, HeaderByteFlipsNeverCrash) {
  const std::string bytes = SerializeModel(TestModel());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  for (size_t i = 0; i < 8 + n; ++i) {
    std::string copy = bytes;
    copy[i] = static_cast<char>(copy[i] ^ 0x04);
    (void)ParseModel(copy);
  }
}

struct ModelCase {
  const char* what;
  std::function<void(RawFile&)> mutate;
  const char* message;
};

TEST(ModelCheckpointTest, RejectsInconsistentFiles) {
  const std::string good = SerializeModel(TestModel());
  ASSERT_TRUE(ParseModel(Mutate(good, [](RawFile&) {})).ok());
  const std::vector<ModelCase> cases = {
      {"transposed wte",
       [](RawFile& f) {
         f.tensors["wte"].shape = {8, 5};
       },
       "tensor \"wte\" has shape [8, 5], expected [5, 8]"},
      {"flattened fc1",
       [](RawFile& f) { f.tensors["layer0.mlp_fc1"].shape = {256}; },
       "tensor \"layer0.mlp_fc1\" has shape [256], expected [32, 8]"},
      {"missing tensor", [](RawFile& f) { f.tensors.erase("layer1.mlp_fc2"); },
       "tensor \"layer1.mlp_fc2\" is missing"},
      {"unexpected tensor",
       [](RawFile& f) {
         f.tensors["layer2.attn_wq"] = f.tensors["layer0.attn_wq"];
       },
       "unexpected tensor \"layer2.attn_wq\""},
      {"wrong dtype", [](RawFile& f) { f.tensors["wpe"].dtype = "I32"; },
       "tensor \"wpe\" has dtype I32, expected F32"},
      {"vocabulary too short",
       [](RawFile& f) { f.metadata["microgpt.vocab"] = R"(["a","b","c"])"; },
       "the vocabulary has 3 characters but vocab_size is 5"},
      {"vocabulary not sorted",
       [](RawFile& f) {
         f.metadata["microgpt.vocab"] = "[\"b\",\"a\",\"c\",\"\xC3\xA9\"]";
       },
       "microgpt.vocab"},
      {"vocabulary not JSON",
       [](RawFile& f) { f.metadata["microgpt.vocab"] = "[\"a\""; },
       "microgpt.vocab"},
      {"bad config",
       [](RawFile& f) {
         f.metadata["microgpt.config"] =
             R"({"n_embd":8,"n_head":3,"n_layer":2,"block_size":4,"vocab_size":5})";
       },
       "microgpt.config"},
      {"config bigger than the tensors",
       [](RawFile& f) {
         f.metadata["microgpt.config"] =
             R"({"n_embd":8,"n_head":2,"n_layer":3,"block_size":4,"vocab_size":5})";
       },
       "tensor \"layer2.attn_wq\" is missing"},
      {"no config", [](RawFile& f) { f.metadata.erase("microgpt.config"); },
       "no metadata \"microgpt.config\""},
      {"no vocab", [](RawFile& f) { f.metadata.erase("microgpt.vocab"); },
       "no metadata \"microgpt.vocab\""},
      {"no step", [](RawFile& f) { f.metadata.erase("microgpt.step"); },
       "no metadata \"microgpt.step\""},
      {"no loss", [](RawFile& f) { f.metadata.erase("microgpt.loss"); },
       "no metadata \"microgpt.loss\""},
      {"negative step", [](RawFile& f) { f.metadata["microgpt.step"] = "-1"; },
       "\"microgpt.step\" is not a non-negative integer"},
      {"step with a leading zero",
       [](RawFile& f) { f.metadata["microgpt.step"] = "01"; }, "microgpt.step"},
      {"step overflow",
       [](RawFile& f) { f.metadata["microgpt.step"] = "99999999999999999999"; },
       "microgpt.step"},
      {"empty step", [](RawFile& f) { f.metadata["microgpt.step"] = ""; },
       "microgpt.step"},
      {"loss not a number",
       [](RawFile& f) { f.metadata["microgpt.loss"] = "2.31x"; },
       "\"microgpt.loss\" is not a number"},
      {"empty loss", [](RawFile& f) { f.metadata["microgpt.loss"] = ""; },
       "microgpt.loss"},
  };
  for (const ModelCase& c : cases) {
    EXPECT_THAT(
        ParseModel(Mutate(good, c.mutate)),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

TEST(ModelCheckpointTest, ExtraMetadataIsAllowed) {
  const std::string bytes = Mutate(SerializeModel(TestModel()), [](RawFile& f) {
    f.metadata["format"] = "pt";
  });
  EXPECT_TRUE(ParseModel(bytes).ok());
}

// -------------------------------------------------------------- optimizer

TEST(OptimizerCheckpointTest, RoundTripIsBitExact) {
  const ParameterLayout layout(TestModel().config);
  const OptimizerCheckpoint state = TestOptimizer(layout);
  const std::string bytes = SerializeOptimizer(state, layout);
  ASSERT_FALSE(bytes.empty());
  const absl::StatusOr<OptimizerCheckpoint> back =
      ParseOptimizer(bytes, layout);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->adam_step, 1000);
  EXPECT_EQ(Bits(back->m), Bits(state.m));
  EXPECT_EQ(Bits(back->v), Bits(state.v));
  EXPECT_EQ(back->data_order, state.data_order);
  EXPECT_EQ(back->data_epoch, 3);
  EXPECT_EQ(back->data_cursor, 5);
  EXPECT_EQ(back->rng_state, state.rng_state);
  EXPECT_EQ(back->dataset_sha256, state.dataset_sha256);
  EXPECT_EQ(SerializeOptimizer(*back, layout), bytes);
}

TEST(OptimizerCheckpointTest, EmptyDataOrderRoundTrips) {
  const ParameterLayout layout(TestModel().config);
  OptimizerCheckpoint state = TestOptimizer(layout);
  state.data_order.clear();
  state.data_cursor = 0;
  const absl::StatusOr<OptimizerCheckpoint> back =
      ParseOptimizer(SerializeOptimizer(state, layout), layout);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->data_order.empty());
}

TEST(OptimizerCheckpointTest, ReadableByAnIndependentSafetensorsReader) {
  const ParameterLayout layout(TestModel().config);
  const OptimizerCheckpoint state = TestOptimizer(layout);
  RawFile raw;
  ASSERT_NO_FATAL_FAILURE(ReadRaw(SerializeOptimizer(state, layout), &raw));

  std::set<std::string> expected_names = {"data.order"};
  size_t offset = 0;
  for (const auto& [name, shape] : ExpectedTensors()) {
    const size_t n = static_cast<size_t>(shape[0] * shape[1]);
    for (const auto& [prefix, values] :
         {std::pair{"adam.m.", &state.m}, std::pair{"adam.v.", &state.v}}) {
      const std::string full = prefix + name;
      expected_names.insert(full);
      const RawTensor& t = raw.tensors[full];
      EXPECT_EQ(t.dtype, "F32") << full;
      EXPECT_EQ(t.shape, shape) << full;
      ASSERT_EQ(t.bytes.size(), 4 * n) << full;
      EXPECT_EQ(std::memcmp(t.bytes.data(), values->data() + offset, 4 * n), 0)
          << full;
    }
    offset += n;
  }
  std::set<std::string> names;
  for (const auto& [name, t] : raw.tensors) names.insert(name);
  EXPECT_EQ(names, expected_names);

  const RawTensor& order = raw.tensors["data.order"];
  EXPECT_EQ(order.dtype, "I32");
  EXPECT_THAT(order.shape, ElementsAre(7));
  EXPECT_EQ(order.bytes, std::string("\x03\0\0\0\0\0\0\0\x06\0\0\0\x01\0\0\0"
                                     "\x05\0\0\0\x02\0\0\0\x04\0\0\0",
                                     28));

  std::set<std::string> keys;
  for (const auto& [key, value] : raw.metadata) keys.insert(key);
  EXPECT_EQ(keys,
            (std::set<std::string>{"microgpt.adam_step", "microgpt.data_epoch",
                                   "microgpt.data_cursor", "microgpt.rng_state",
                                   "microgpt.dataset_sha256"}));
  EXPECT_EQ(raw.metadata["microgpt.adam_step"], "1000");
  EXPECT_EQ(raw.metadata["microgpt.data_epoch"], "3");
  EXPECT_EQ(raw.metadata["microgpt.data_cursor"], "5");
  EXPECT_EQ(raw.metadata["microgpt.rng_state"],
            "0000000000000001 ffffffffffffffff 0123456789abcdef "
            "0000000000000000");
  EXPECT_EQ(raw.metadata["microgpt.dataset_sha256"], state.dataset_sha256);
}

TEST(OptimizerCheckpointTest, SerializeRefusesAnInconsistentState) {
  const ParameterLayout layout(TestModel().config);
  OptimizerCheckpoint state = TestOptimizer(layout);
  state.m.pop_back();
  EXPECT_EQ(SerializeOptimizer(state, layout), "");
  state = TestOptimizer(layout);
  state.data_cursor = 8;
  EXPECT_EQ(SerializeOptimizer(state, layout), "");
  state = TestOptimizer(layout);
  state.data_order[0] = 7;
  EXPECT_EQ(SerializeOptimizer(state, layout), "");
  state = TestOptimizer(layout);
  state.adam_step = -1;
  EXPECT_EQ(SerializeOptimizer(state, layout), "");
}

TEST(OptimizerCheckpointTest, RejectsAnotherLayout) {
  const ModelCheckpoint model = TestModel();
  const ParameterLayout layout(model.config);
  const std::string bytes = SerializeOptimizer(TestOptimizer(layout), layout);
  ModelConfig wider = model.config;
  wider.n_embd = 16;
  EXPECT_THAT(ParseOptimizer(bytes, ParameterLayout(wider)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor \"adam.m.wte\" has shape [5, 8], "
                                 "expected [5, 16]")));
  ModelConfig deeper = model.config;
  deeper.n_layer = 1;
  EXPECT_THAT(ParseOptimizer(bytes, ParameterLayout(deeper)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unexpected tensor \"adam.m.layer1.")));
}

TEST(OptimizerCheckpointTest, RejectsTruncatedFiles) {
  const ParameterLayout layout(TestModel().config);
  const std::string bytes = SerializeOptimizer(TestOptimizer(layout), layout);
  for (size_t n = 0; n < bytes.size(); n += 11) {
    EXPECT_THAT(ParseOptimizer(bytes.substr(0, n), layout), IsError()) << n;
  }
}

TEST(OptimizerCheckpointTest, RejectsInconsistentFiles) {
  const ParameterLayout layout(TestModel().config);
  const std::string good = SerializeOptimizer(TestOptimizer(layout), layout);
  ASSERT_TRUE(ParseOptimizer(Mutate(good, [](RawFile&) {}), layout).ok());
  const std::vector<ModelCase> cases = {
      {"order out of range",
       [](RawFile& f) { f.tensors["data.order"].bytes[0] = 7; },
       "data.order[0] = 7 is not a document index in [0, 7)"},
      {"negative order",
       [](RawFile& f) { f.tensors["data.order"].bytes[3] = '\x80'; },
       "data.order[0]"},
      {"order not I32",
       [](RawFile& f) { f.tensors["data.order"].dtype = "F32"; },
       "must be I32 [num_documents]"},
      {"order 2-d",
       [](RawFile& f) {
         f.tensors["data.order"].shape = {7, 1};
       },
       "must be I32 [num_documents]"},
      {"no order", [](RawFile& f) { f.tensors.erase("data.order"); },
       "tensor \"data.order\" is missing"},
      {"moment missing", [](RawFile& f) { f.tensors.erase("adam.v.wpe"); },
       "tensor \"adam.v.wpe\" is missing"},
      {"moment transposed",
       [](RawFile& f) {
         f.tensors["adam.v.layer1.mlp_fc2"].shape = {32, 8};
       },
       "adam.v.layer1.mlp_fc2"},
      {"extra tensor",
       [](RawFile& f) { f.tensors["adam.m.extra"] = f.tensors["adam.m.wte"]; },
       "unexpected tensor \"adam.m.extra\""},
      {"cursor past the end",
       [](RawFile& f) { f.metadata["microgpt.data_cursor"] = "8"; },
       "data_cursor 8 is past the end"},
      {"negative epoch",
       [](RawFile& f) { f.metadata["microgpt.data_epoch"] = "-1"; },
       "microgpt.data_epoch"},
      {"no adam step",
       [](RawFile& f) { f.metadata.erase("microgpt.adam_step"); },
       "no metadata \"microgpt.adam_step\""},
      {"rng state too short",
       [](RawFile& f) { f.metadata["microgpt.rng_state"] = "1 2 3 4"; },
       "microgpt.rng_state"},
      {"rng state upper case",
       [](RawFile& f) {
         f.metadata["microgpt.rng_state"] =
             "0000000000000001 FFFFFFFFFFFFFFFF 0123456789abcdef "
             "0000000000000000";
       },
       "microgpt.rng_state"},
      {"rng state with commas",
       [](RawFile& f) {
         f.metadata["microgpt.rng_state"] =
             "0000000000000001,ffffffffffffffff,0123456789abcdef,"
             "0000000000000000";
       },
       "microgpt.rng_state"},
      {"no dataset hash",
       [](RawFile& f) { f.metadata.erase("microgpt.dataset_sha256"); },
       "microgpt.dataset_sha256"},
  };
  for (const ModelCase& c : cases) {
    EXPECT_THAT(
        ParseOptimizer(Mutate(good, c.mutate), layout),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
  }
}

}  // namespace
}  // namespace microgpt
