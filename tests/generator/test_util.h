// Helpers shared by the generator tests: temporary checkpoint roots, small
// models published with the real CheckpointStore, models steered towards or
// away from BOS (for exact finish-reason and long-stream tests), a reference
// decode with the engine's own Decoder, and a health check over a generic
// call (the system gRPC ships no generated health stubs).
#ifndef MICROGPT_TESTS_GENERATOR_TEST_UTIL_H_
#define MICROGPT_TESTS_GENERATOR_TEST_UTIL_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/checkpoint.h"
#include "common/checkpoint_store.h"
#include "common/config.h"
#include "common/decoder.h"
#include "common/model.h"
#include "common/parameters.h"
#include "common/sampler.h"
#include "common/tokenizer.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "tests/temp_dir.h"

namespace microgpt {
namespace testing {

inline constexpr absl::string_view kLetters = "abcdefghijklmnopqrstuvwxyz";

// How much slower the code runs under ThreadSanitizer (scripts/tsan.sh);
// tests whose point is a short deadline scale it by this, so that the
// deadline still falls in the middle of the stream and not before its start.
#if defined(__SANITIZE_THREAD__)
inline constexpr int kSanitizerSlowdown = 10;
#else
inline constexpr int kSanitizerSlowdown = 1;
#endif

// The reference sizes unless changed; vocab_size comes from `chars`.
inline ModelConfig SmallConfig(int block_size = 16, int n_embd = 16) {
  ModelConfig config;
  config.n_embd = n_embd;
  config.n_head = 4;
  config.n_layer = 1;
  config.block_size = block_size;
  return config;
}

// A Model::Initialize'd checkpoint over the characters of `chars`.
inline ModelCheckpoint MakeCheckpoint(ModelConfig config, uint64_t seed,
                                      int64_t step = 1, double loss = 3.0,
                                      absl::string_view chars = kLetters) {
  Tokenizer tokenizer = Tokenizer::FromDocuments({std::string(chars)});
  config.vocab_size = tokenizer.vocab_size();
  Model model = Model::Initialize(config, seed);
  ModelCheckpoint checkpoint{config,      tokenizer, model.parameters(),
                             step,        loss,      DatasetFormat::kDocuments,
                             std::nullopt};
  return checkpoint;
}

// Steers the model for or against BOS whatever the context: embedding
// dimension 0 is a large constant that attention and the MLP leave alone,
// and only BOS reads it from the final residual. bias > 0 makes BOS (almost
// surely) always drawn, bias < 0 never (its logit is about 4 * bias).
inline void SteerBos(ModelCheckpoint& checkpoint, float bias) {
  const ModelConfig& config = checkpoint.config;
  const size_t C = config.n_embd;
  ParameterLayout layout(config);
  ParameterViews<float> w = layout.Views(checkpoint.parameters.data());
  for (size_t v = 0; v < static_cast<size_t>(config.vocab_size); ++v) {
    w.wte[v * C] = 10.0f;
    w.lm_head[v * C] =
        v + 1 == static_cast<size_t>(config.vocab_size) ? bias : 0.0f;
  }
  for (size_t t = 0; t < static_cast<size_t>(config.block_size); ++t) {
    w.wpe[t * C] = 0.0f;
  }
  for (auto& layer : w.layers) {
    for (size_t j = 0; j < C; ++j) layer.attn_wo[j] = 0.0f;      // row 0
    for (size_t j = 0; j < 4 * C; ++j) layer.mlp_fc2[j] = 0.0f;  // row 0
  }
}

inline void Publish(const std::string& root, const std::string& name,
                    int64_t version, const ModelCheckpoint& checkpoint) {
  CheckpointStore store(root);
  absl::Status status = store.Publish(name, version, checkpoint, nullptr,
                                      ParameterLayout(checkpoint.config));
  ASSERT_TRUE(status.ok()) << status;
}

// Flips one byte in the middle of a published version's model file, so that
// it fails its manifest's SHA-256.
inline void CorruptVersion(const std::string& root, const std::string& name,
                           int64_t version) {
  const std::string path =
      CheckpointStore(root).VersionPath(name, version) + "/model.safetensors";
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file.is_open()) << path;
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  file.seekg(size / 2);
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  file.seekp(size / 2);
  file.write(&byte, 1);
}

inline Model ToModel(const ModelCheckpoint& checkpoint) {
  return *Model::FromParameters(checkpoint.config, checkpoint.parameters);
}

// log_softmax of the logits after feeding each of `tokens` in turn with the
// engine's single-token Decoder::Step: row t predicts position t + 1.
inline std::vector<std::vector<float>> ReferenceLogprobs(
    const Model& model, const std::vector<int>& tokens) {
  const int V = model.config().vocab_size;
  Decoder decoder(model, 1);
  KVCache cache(model.config());
  std::vector<float> logits(V);
  std::vector<std::vector<float>> rows;
  for (int token : tokens) {
    decoder.Step(token, &cache, logits.data());
    // log_softmax in double, the textbook way.
    const double m = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(double{v} - m);
    std::vector<float> row;
    for (float v : logits) {
      row.push_back(static_cast<float>(double{v} - m - std::log(sum)));
    }
    rows.push_back(row);
  }
  return rows;
}

// A sample decoded directly with Decoder::Step and a Sampler: the ids the
// generator must produce for the same model, prompt, parameters and seed.
inline std::vector<int> ReferenceSample(const Model& model, int bos,
                                        const std::vector<int>& prompt,
                                        const SamplingParams& params,
                                        uint64_t seed, int max_tokens) {
  const ModelConfig& config = model.config();
  Decoder decoder(model, 1);
  KVCache cache(config);
  Sampler sampler(params, seed);
  std::vector<float> logits(config.vocab_size);
  std::vector<int> fed = {bos};
  fed.insert(fed.end(), prompt.begin(), prompt.end());
  for (int token : fed) decoder.Step(token, &cache, logits.data());
  std::vector<int> out;
  while (true) {
    const int id = sampler.Sample(logits).id;
    out.push_back(id);
    if (id == bos || static_cast<int>(out.size()) == max_tokens ||
        cache.full()) {
      return out;
    }
    decoder.Step(id, &cache, logits.data());
  }
}

// grpc.health.v1.Health/Check, hand-encoded: returns the ServingStatus
// (1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN) or -code on an RPC error.
inline int HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                       const std::string& service) {
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);  // field 1, length-delimited
    request.push_back(static_cast<char>(service.size()));  // < 128
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status status =
      grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          channel.get(), method, &context, request_buffer, &response_buffer);
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  (void)response_buffer.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (bytes.size() >= 2 && bytes[0] == 0x08) return bytes[1];
  return 0;  // UNKNOWN (the default value is not serialised)
}

// Polls `condition` until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Waits until `count()` stops changing for 100 ms and returns its value: the
// scheduler has finished or stalled behind full buffers.
inline int64_t WaitForQuiescence(const std::function<int64_t()>& count) {
  int64_t last = -1;
  while (true) {
    const int64_t now = count();
    if (now == last) return now;
    last = now;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

struct StreamResult {
  grpc::Status status;
  std::vector<v1::GenerateResponse> messages;
};

inline StreamResult GenerateAll(v1::Generator::Stub* stub,
                                const v1::GenerateRequest& request,
                                absl::Duration timeout = absl::Seconds(30)) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  StreamResult result;
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) result.messages.push_back(response);
  result.status = reader->Finish();
  return result;
}

// The messages of one sample, in order.
inline std::vector<v1::GenerateResponse> SampleMessages(
    const std::vector<v1::GenerateResponse>& messages, int sample_index) {
  std::vector<v1::GenerateResponse> out;
  for (const auto& m : messages) {
    if (m.sample_index() == sample_index) out.push_back(m);
  }
  return out;
}

inline std::vector<int> Ids(const std::vector<v1::GenerateResponse>& messages) {
  std::vector<int> ids;
  ids.reserve(messages.size());
  for (const auto& m : messages) ids.push_back(m.id());
  return ids;
}

}  // namespace testing
}  // namespace microgpt

#endif  // MICROGPT_TESTS_GENERATOR_TEST_UTIL_H_
