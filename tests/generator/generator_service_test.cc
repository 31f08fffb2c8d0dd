// The Generator service end to end: a real in-process server on 127.0.0.1
// (port 0), checkpoints published with CheckpointStore into a temporary root,
// and the generated Generator::Stub as the client.
#include "generator/generator_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "generator/generator_server.h"
#include "generator/request_validation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/generator/test_util.h"

namespace microgpt {
namespace {

using ::microgpt::testing::GenerateAll;
using ::microgpt::testing::Ids;
using ::microgpt::testing::kSanitizerSlowdown;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::ReferenceLogprobs;
using ::microgpt::testing::ReferenceSample;
using ::microgpt::testing::SampleMessages;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::SteerBos;
using ::microgpt::testing::StreamResult;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::ToModel;
using ::microgpt::testing::WaitFor;
using ::testing::HasSubstr;

constexpr int kBos = 26;  // over a..z

class GeneratorServiceTest : public ::testing::Test {
 protected:
  void StartServer(SchedulerOptions scheduler = {}, int versions_to_keep = 2,
                   GeneratorServiceOptions service = {}) {
    GeneratorServerOptions options;
    options.server.host = "127.0.0.1";
    options.server.port = 0;
    options.server.shutdown_grace = absl::Seconds(2);
    options.checkpoint_root = root_.path();
    options.poll_interval = absl::ZeroDuration();  // the test polls
    options.versions_to_keep = versions_to_keep;
    options.scheduler = scheduler;
    options.service = service;
    auto server = GeneratorServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->Start().ok());
    channel_ =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                            grpc::InsecureChannelCredentials());
    stub_ = v1::Generator::NewStub(channel_);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->RequestShutdown();
      server_->WaitForShutdown();
    }
  }

  void PublishAndLoad(const std::string& name, int64_t version,
                      const ModelCheckpoint& checkpoint) {
    Publish(root_.path(), name, version, checkpoint);
    ASSERT_TRUE(server_->models().PollOnce().ok());
    ASSERT_TRUE(server_->models().Get(name, version).ok());
  }

  // A client whose streams take 1 KiB before it reads (a fixed HTTP/2
  // window): with every alternative reported (about 1 KiB a token), the
  // tokens of a call it stops reading wait in the scheduler's buffers.
  std::unique_ptr<v1::Generator::Stub> SlowReaderStub() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
    return v1::Generator::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(server_->port()),
        grpc::InsecureChannelCredentials(), args));
  }

  // For SlowReaderStub: 94 printable ASCII characters, so that reporting
  // every alternative makes each token about 1 KiB; samples of kSlowTokens
  // tokens (BOS steered away).
  static constexpr int kSlowTokens = 128;
  static std::string Printable() {
    std::string printable;
    for (char c = '!'; c <= '~'; ++c) printable.push_back(c);
    return printable;
  }
  static ModelCheckpoint SlowReaderModel(uint64_t seed, int64_t step) {
    ModelCheckpoint checkpoint =
        MakeCheckpoint(SmallConfig(kSlowTokens), seed, step, 3.0, Printable());
    SteerBos(checkpoint, -10.0f);
    return checkpoint;
  }
  // `samples` samples of SlowReaderModel reporting every alternative.
  static v1::GenerateRequest SlowReaderRequest(int samples) {
    v1::GenerateRequest request;
    request.set_seed(77);
    request.set_temperature(1.0f);
    request.set_num_samples(samples);
    request.set_top_logprobs(static_cast<int>(Printable().size()) + 1);
    return request;
  }

  int64_t WaitForQuiescence() {
    return testing::WaitForQuiescence(
        [&] { return server_->scheduler().stats().tokens_generated; });
  }

  TempDir root_;
  std::unique_ptr<GeneratorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generator::Stub> stub_;
};

TEST_F(GeneratorServiceTest, StreamsTokensEndingWithFinishReasonAndVersion) {
  StartServer();
  PublishAndLoad("names", 42, MakeCheckpoint(SmallConfig(), 5, 42));
  v1::GenerateRequest request;
  request.set_prompt("em");
  request.set_seed(1);
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_FALSE(result.messages.empty());
  for (size_t t = 0; t < result.messages.size(); ++t) {
    const v1::GenerateResponse& m = result.messages[t];
    EXPECT_EQ(m.sample_index(), 0);
    EXPECT_EQ(m.position(), static_cast<int>(3 + t));  // BOS, e, m, then this
    EXPECT_LE(m.logprob(), 0.0f);
    if (m.id() == kBos) {
      EXPECT_EQ(m.text(), "");
    } else {
      ASSERT_GE(m.id(), 0);
      EXPECT_EQ(m.text(), std::string(1, static_cast<char>('a' + m.id())));
    }
    const bool last = t + 1 == result.messages.size();
    EXPECT_EQ(m.finish_reason() != v1::FINISH_REASON_UNSPECIFIED, last);
    EXPECT_EQ(m.model(), last ? "names" : "");
    EXPECT_EQ(m.version(), last ? 42 : 0);
  }
  const v1::GenerateResponse& last = result.messages.back();
  if (last.finish_reason() == v1::FINISH_REASON_BOS) {
    EXPECT_EQ(last.id(), kBos);
  } else {
    EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_BLOCK_SIZE);
    EXPECT_EQ(last.position(), 16);
  }
}

TEST_F(GeneratorServiceTest, FinishReasonsFollowTheModelAndLimits) {
  StartServer();
  ModelCheckpoint always_bos = MakeCheckpoint(SmallConfig(), 1);
  SteerBos(always_bos, 10.0f);
  ModelCheckpoint never_bos = MakeCheckpoint(SmallConfig(), 1);
  SteerBos(never_bos, -10.0f);
  PublishAndLoad("stop", 1, always_bos);
  PublishAndLoad("go", 1, never_bos);

  v1::GenerateRequest request;
  request.set_model("stop");
  StreamResult bos = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(bos.status.ok());
  ASSERT_EQ(bos.messages.size(), 1u);
  EXPECT_EQ(bos.messages[0].finish_reason(), v1::FINISH_REASON_BOS);
  EXPECT_EQ(bos.messages[0].id(), kBos);
  EXPECT_EQ(bos.messages[0].text(), "");
  EXPECT_EQ(bos.messages[0].position(), 1);

  request.set_model("go");
  request.set_max_tokens(4);
  StreamResult limited = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(limited.status.ok());
  ASSERT_EQ(limited.messages.size(), 4u);
  EXPECT_EQ(limited.messages.back().finish_reason(),
            v1::FINISH_REASON_MAX_TOKENS);

  request.set_max_tokens(0);
  request.set_prompt("abcde");
  StreamResult full = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(full.status.ok());
  ASSERT_EQ(full.messages.size(), 16u - 5u);  // positions 6..16
  EXPECT_EQ(full.messages.back().finish_reason(), v1::FINISH_REASON_BLOCK_SIZE);
  EXPECT_EQ(full.messages.back().position(), 16);
}

struct BadRequestCase {
  std::string name;
  std::function<void(v1::GenerateRequest&)> mutate;
  grpc::StatusCode code;
  std::vector<std::string> message_parts;
};

TEST_F(GeneratorServiceTest, BadRequestsNameTheFieldAndServingContinues) {
  StartServer();
  PublishAndLoad("names", 3, MakeCheckpoint(SmallConfig(), 5, 3));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const std::vector<BadRequestCase> cases = {
      {"negative temperature",
       [](auto& r) { r.set_temperature(-0.1f); },
       kInvalid,
       {"temperature"}},
      {"NaN temperature",
       [&](auto& r) { r.set_temperature(nan); },
       kInvalid,
       {"temperature"}},
      {"infinite temperature",
       [&](auto& r) { r.set_temperature(inf); },
       kInvalid,
       {"temperature"}},
      {"zero top_p", [](auto& r) { r.set_top_p(0.0f); }, kInvalid, {"top_p"}},
      {"top_p above 1",
       [](auto& r) { r.set_top_p(1.5f); },
       kInvalid,
       {"top_p"}},
      {"NaN top_p", [&](auto& r) { r.set_top_p(nan); }, kInvalid, {"top_p"}},
      {"negative top_k", [](auto& r) { r.set_top_k(-1); }, kInvalid, {"top_k"}},
      {"negative max_tokens",
       [](auto& r) { r.set_max_tokens(-1); },
       kInvalid,
       {"max_tokens"}},
      {"max_tokens above block_size",
       [](auto& r) { r.set_max_tokens(17); },
       kInvalid,
       {"max_tokens", "16"}},
      {"prompt outside the vocabulary",
       [](auto& r) { r.set_prompt("abZd"); },
       kInvalid,
       {"prompt", "'Z'", "position 2"}},
      {"prompt too long",
       [](auto& r) { r.set_prompt("abcdefghijklmnop"); },
       kInvalid,
       {"prompt", "16 characters", "15"}},
      {"negative top_logprobs",
       [](auto& r) { r.set_top_logprobs(-1); },
       kInvalid,
       {"top_logprobs"}},
      {"top_logprobs above vocab_size",
       [](auto& r) { r.set_top_logprobs(28); },
       kInvalid,
       {"top_logprobs", "27"}},
      {"negative num_samples",
       [](auto& r) { r.set_num_samples(-1); },
       kInvalid,
       {"num_samples"}},
      {"num_samples above 64",
       [](auto& r) { r.set_num_samples(65); },
       kInvalid,
       {"num_samples", "64"}},
      {"negative version",
       [](auto& r) { r.set_version(-2); },
       kInvalid,
       {"version"}},
      {"prompt above kMaxPromptBytes, before tokenizing",
       [](auto& r) { r.set_prompt(std::string(kMaxPromptBytes + 1, 'Z')); },
       kInvalid,
       {"prompt", "8193 bytes", "limit of 8192"}},
      {"model name with a path separator",
       [](auto& r) { r.set_model("../names"); },
       kInvalid,
       {"model", "[A-Za-z0-9._-]"}},
      {"model name too long",
       [](auto& r) { r.set_model(std::string(65, 'n')); },
       kInvalid,
       {"model", "1 to 64 characters"}},
      {"unknown model",
       [](auto& r) { r.set_model("nope"); },
       grpc::StatusCode::NOT_FOUND,
       {"nope"}},
      {"unknown version",
       [](auto& r) { r.set_version(999); },
       grpc::StatusCode::NOT_FOUND,
       {"999"}},
  };
  for (const BadRequestCase& c : cases) {
    SCOPED_TRACE(c.name);
    v1::GenerateRequest request;
    request.set_seed(1);
    c.mutate(request);
    StreamResult result = GenerateAll(stub_.get(), request);
    EXPECT_EQ(result.status.error_code(), c.code)
        << result.status.error_message();
    EXPECT_TRUE(result.messages.empty());
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(result.status.error_message(), HasSubstr(part));
    }
  }
  EXPECT_EQ(server_->scheduler().stats().tokens_generated, 0);

  // The edges of every range are accepted, and the server still serves.
  v1::GenerateRequest edges;
  edges.set_temperature(0.0f);
  edges.set_top_p(1.0f);
  edges.set_top_k(1000);
  edges.set_max_tokens(16);
  edges.set_prompt("abcdefghijklmno");
  edges.set_top_logprobs(27);
  edges.set_num_samples(64);
  edges.set_version(3);
  StreamResult ok = GenerateAll(stub_.get(), edges);
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.messages.size(), 64u);  // one token each: the block is full
}

// A text model's sample runs past block_size (16) up to the server's
// max_tokens limit (40 here, what max_tokens 0 means), from a newline when the
// prompt is empty; its prompt may be longer than block_size, and positions
// count the whole stream.
TEST_F(GeneratorServiceTest, TextModelsStreamPastBlockSizeUpToTheLimit) {
  GeneratorServiceOptions service;
  service.max_tokens_limit = 40;
  StartServer({}, 2, service);
  ModelCheckpoint text = MakeCheckpoint(SmallConfig(16), 9, 1, 3.0,
                                        "abcdefghijklmnopqrstuvwxyz \n");
  text.format = DatasetFormat::kText;
  SteerBos(text, -10.0f);
  PublishAndLoad("text", 1, text);
  const int newline = text.tokenizer.Encode("\n")->front();

  v1::GenerateRequest request;
  request.set_seed(4);
  StreamResult all = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(all.status.ok()) << all.status.error_message();
  ASSERT_EQ(all.messages.size(), 40u);
  for (size_t t = 0; t < all.messages.size(); ++t) {
    EXPECT_EQ(all.messages[t].position(), static_cast<int>(t + 1));
    EXPECT_EQ(all.messages[t].finish_reason(),
              t + 1 == all.messages.size() ? v1::FINISH_REASON_MAX_TOKENS
                                           : v1::FINISH_REASON_UNSPECIFIED);
  }
  const std::vector<std::vector<float>> from_newline =
      ReferenceLogprobs(ToModel(text), {newline});
  EXPECT_NEAR(all.messages[0].logprob(), from_newline[0][all.messages[0].id()],
              1e-5);

  request.set_prompt("the quick brown fox jumps over");  // 30 characters
  request.set_max_tokens(3);
  StreamResult long_prompt = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(long_prompt.status.ok()) << long_prompt.status.error_message();
  ASSERT_EQ(long_prompt.messages.size(), 3u);
  EXPECT_EQ(long_prompt.messages[0].position(), 30);

  request.set_max_tokens(41);
  StreamResult refused = GenerateAll(stub_.get(), request);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("max_tokens"));
  EXPECT_THAT(refused.status.error_message(), HasSubstr("[0, 40]"));
  EXPECT_THAT(refused.status.error_message(), HasSubstr("max_tokens_limit"));
}

// A documents model keeps its block_size bound and message, and the server's
// limit bounds it too when it is the smaller one.
TEST_F(GeneratorServiceTest, DocumentsModelsAreBoundedByBlockSizeAndTheLimit) {
  GeneratorServiceOptions service;
  service.max_tokens_limit = 8;
  StartServer({}, 2, service);
  ModelCheckpoint names = MakeCheckpoint(SmallConfig(16), 10);
  SteerBos(names, -10.0f);
  PublishAndLoad("names", 1, names);
  v1::GenerateRequest request;
  request.set_seed(5);
  request.set_max_tokens(17);
  StreamResult over_block = GenerateAll(stub_.get(), request);
  EXPECT_EQ(over_block.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(over_block.status.error_message(),
              HasSubstr("max_tokens must be in [0, block_size = 16]"));
  request.set_max_tokens(9);
  StreamResult over_limit = GenerateAll(stub_.get(), request);
  EXPECT_EQ(over_limit.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(over_limit.status.error_message(),
              HasSubstr("max_tokens must be in [0, 8]"));
  for (const int max_tokens : {0, 8}) {
    request.set_max_tokens(max_tokens);
    StreamResult ok = GenerateAll(stub_.get(), request);
    ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
    ASSERT_EQ(ok.messages.size(), 8u) << max_tokens;
    EXPECT_EQ(ok.messages.back().finish_reason(), v1::FINISH_REASON_MAX_TOKENS);
    EXPECT_EQ(ok.messages.front().position(), 1);
  }
}

TEST_F(GeneratorServiceTest, EmptyModelNameIsAmbiguousWithSeveralModels) {
  StartServer();
  PublishAndLoad("a", 1, MakeCheckpoint(SmallConfig(), 1));
  PublishAndLoad("b", 1, MakeCheckpoint(SmallConfig(), 2));
  StreamResult result = GenerateAll(stub_.get(), v1::GenerateRequest());
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(result.status.error_message(), HasSubstr("model"));
  v1::GenerateRequest named;
  named.set_model("b");
  EXPECT_TRUE(GenerateAll(stub_.get(), named).status.ok());
}

TEST_F(GeneratorServiceTest, SameSeedSameTokensAndSampleIUsesSeedPlusI) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  v1::GenerateRequest request;
  request.set_seed(42);
  request.set_temperature(1.0f);
  StreamResult first = GenerateAll(stub_.get(), request);
  StreamResult second = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(first.status.ok());
  ASSERT_TRUE(second.status.ok());
  EXPECT_EQ(Ids(first.messages), Ids(second.messages));

  const Model model = ToModel(MakeCheckpoint(SmallConfig(), 8));
  SamplingParams params;
  params.temperature = 1.0f;
  EXPECT_EQ(Ids(first.messages),
            ReferenceSample(model, kBos, {}, params, 42, 0));

  request.set_num_samples(4);
  StreamResult many = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(many.status.ok());
  for (int i = 0; i < 4; ++i) {
    v1::GenerateRequest single = request;
    single.set_num_samples(1);
    single.set_seed(42 + i);
    StreamResult alone = GenerateAll(stub_.get(), single);
    ASSERT_TRUE(alone.status.ok());
    EXPECT_EQ(Ids(SampleMessages(many.messages, i)), Ids(alone.messages))
        << "sample " << i;
  }
}

TEST_F(GeneratorServiceTest, NumSamplesTagsEverySample) {
  StartServer();
  PublishAndLoad("names", 9, MakeCheckpoint(SmallConfig(), 3, 9));
  v1::GenerateRequest request;
  request.set_num_samples(5);
  request.set_temperature(1.5f);
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok());
  std::set<int> indexes;
  for (const auto& m : result.messages) indexes.insert(m.sample_index());
  EXPECT_EQ(indexes, (std::set<int>{0, 1, 2, 3, 4}));
  for (int i = 0; i < 5; ++i) {
    std::vector<v1::GenerateResponse> sample =
        SampleMessages(result.messages, i);
    ASSERT_FALSE(sample.empty());
    for (size_t t = 0; t < sample.size(); ++t) {
      EXPECT_EQ(sample[t].position(), static_cast<int>(t + 1));
      EXPECT_EQ(sample[t].finish_reason() != v1::FINISH_REASON_UNSPECIFIED,
                t + 1 == sample.size());
    }
    EXPECT_EQ(sample.back().model(), "names");
    EXPECT_EQ(sample.back().version(), 9);
  }
}

TEST_F(GeneratorServiceTest, TopLogprobsAreReturnedMostLikelyFirst) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 4));
  v1::GenerateRequest request;
  request.set_seed(3);
  request.set_top_logprobs(5);
  request.set_temperature(0.0f);  // greedy: the token is the top one
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok());
  ASSERT_FALSE(result.messages.empty());
  for (const auto& m : result.messages) {
    ASSERT_EQ(m.top_logprobs_size(), 5);
    EXPECT_EQ(m.top_logprobs(0).id(), m.id());
    EXPECT_FLOAT_EQ(m.top_logprobs(0).logprob(), m.logprob());
    std::set<int> ids;
    for (int k = 0; k < 5; ++k) {
      const v1::TokenLogprob& top = m.top_logprobs(k);
      ids.insert(top.id());
      EXPECT_EQ(top.text(),
                top.id() == kBos
                    ? std::string()
                    : std::string(1, static_cast<char>('a' + top.id())));
      if (k > 0) {
        EXPECT_LE(top.logprob(), m.top_logprobs(k - 1).logprob());
      }
    }
    EXPECT_EQ(ids.size(), 5u);
  }
  request.set_top_logprobs(0);
  StreamResult none = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(none.status.ok());
  for (const auto& m : none.messages) EXPECT_EQ(m.top_logprobs_size(), 0);
}

TEST_F(GeneratorServiceTest, LogprobsEqualLogSoftmaxOfTheDecoderForward) {
  StartServer();
  const ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(), 12);
  PublishAndLoad("names", 1, checkpoint);
  v1::GenerateRequest request;
  request.set_prompt("ka");
  request.set_seed(9);
  // Neither temperature nor top_k may change the reported numbers.
  request.set_temperature(0.7f);
  request.set_top_k(20);
  request.set_top_logprobs(27);
  request.set_num_samples(3);
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok());
  const Model model = ToModel(checkpoint);
  for (int i = 0; i < 3; ++i) {
    std::vector<v1::GenerateResponse> sample =
        SampleMessages(result.messages, i);
    ASSERT_FALSE(sample.empty());
    std::vector<int> fed = {kBos, 10, 0};  // BOS, k, a
    for (size_t t = 0; t + 1 < sample.size(); ++t)
      fed.push_back(sample[t].id());
    std::vector<std::vector<float>> rows = ReferenceLogprobs(model, fed);
    for (size_t t = 0; t < sample.size(); ++t) {
      const std::vector<float>& row = rows[2 + t];
      EXPECT_NEAR(sample[t].logprob(), row[sample[t].id()], 1e-4)
          << "sample " << i << " token " << t;
      ASSERT_EQ(sample[t].top_logprobs_size(), 27);
      for (const v1::TokenLogprob& top : sample[t].top_logprobs()) {
        EXPECT_NEAR(top.logprob(), row[top.id()], 1e-4);
      }
    }
  }
}

TEST_F(GeneratorServiceTest, CancelledStreamStopsGenerating) {
  StartServer();
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(2048), 6);
  SteerBos(checkpoint, -10.0f);
  PublishAndLoad("long", 1, checkpoint);
  v1::GenerateRequest request;
  request.set_num_samples(64);
  grpc::ClientContext context;
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(reader->Read(&response));
  EXPECT_GT(server_->scheduler().stats().active, 0);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  ASSERT_TRUE(WaitFor([&] {
    const SchedulerStats stats = server_->scheduler().stats();
    return stats.active == 0 && stats.queued == 0;
  }));
  const int64_t generated = server_->scheduler().stats().tokens_generated;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(server_->scheduler().stats().tokens_generated, generated);
  EXPECT_LT(generated, 64 * 2048);
}

TEST_F(GeneratorServiceTest, DeadlineStopsGeneration) {
  StartServer();
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(2048), 6);
  SteerBos(checkpoint, -10.0f);
  PublishAndLoad("long", 1, checkpoint);
  v1::GenerateRequest request;
  request.set_num_samples(8);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(300 * kSanitizerSlowdown));
  auto reader = stub_->Generate(&context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));  // then stop reading
  std::this_thread::sleep_for(
      std::chrono::milliseconds(400 * kSanitizerSlowdown));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(
      WaitFor([&] { return server_->scheduler().stats().active == 0; }));
}

TEST_F(GeneratorServiceTest, StreamStartedOnVersion1FinishesOnVersion1) {
  SchedulerOptions scheduler;
  scheduler.buffer_tokens = 4;
  StartServer(scheduler, /*versions_to_keep=*/1);
  const int bos = static_cast<int>(Printable().size());
  constexpr int kSamples = 4;
  constexpr int kTokens = kSlowTokens;
  const ModelCheckpoint v1 = SlowReaderModel(31, 1);
  PublishAndLoad("names", 1, v1);

  v1::GenerateRequest request = SlowReaderRequest(kSamples);
  std::unique_ptr<v1::Generator::Stub> slow_reader = SlowReaderStub();
  grpc::ClientContext context;
  auto reader = slow_reader->Generate(&context, request);
  std::vector<v1::GenerateResponse> messages(1);
  ASSERT_TRUE(reader->Read(messages.data()));
  // The client stops reading; the sequences stall behind full buffers.
  EXPECT_LT(WaitForQuiescence(), kSamples * kTokens);
  ASSERT_GT(server_->scheduler().stats().active, 0);

  // Version 2 replaces version 1, which is unloaded from the manager.
  PublishAndLoad("names", 2,
                 MakeCheckpoint(SmallConfig(kTokens), 32, 2, 3.0, Printable()));
  EXPECT_EQ(server_->models().Get("names", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*server_->models().Get("names", 0))->version, 2);

  v1::GenerateResponse response;
  while (reader->Read(&response)) messages.push_back(response);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(messages.size(), static_cast<size_t>(kSamples * kTokens));
  SamplingParams params;
  params.temperature = 1.0f;
  const Model model_v1 = ToModel(v1);
  for (int i = 0; i < kSamples; ++i) {
    std::vector<v1::GenerateResponse> sample = SampleMessages(messages, i);
    ASSERT_EQ(sample.size(), static_cast<size_t>(kTokens));
    EXPECT_EQ(sample.back().finish_reason(), v1::FINISH_REASON_BLOCK_SIZE);
    EXPECT_EQ(sample.back().model(), "names");
    EXPECT_EQ(sample.back().version(), 1);
    EXPECT_EQ(Ids(sample),
              ReferenceSample(model_v1, bos, {}, params, 77 + i, 0))
        << "sample " << i;
  }

  // New calls get version 2.
  request.set_max_tokens(1);
  request.set_num_samples(1);
  StreamResult next = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(next.status.ok());
  EXPECT_EQ(next.messages.back().version(), 2);
}

TEST_F(GeneratorServiceTest, FullSchedulerRefusesWithResourceExhausted) {
  SchedulerOptions scheduler;
  scheduler.max_batch = 1;
  scheduler.max_queued = 0;
  scheduler.buffer_tokens = 4;
  StartServer(scheduler);
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(2048), 6);
  SteerBos(checkpoint, -10.0f);
  PublishAndLoad("long", 1, checkpoint);

  v1::GenerateRequest request;
  request.set_top_logprobs(27);
  auto first_context = std::make_unique<grpc::ClientContext>();
  auto first = stub_->Generate(first_context.get(), request);
  v1::GenerateResponse response;
  ASSERT_TRUE(first->Read(&response));  // admitted; then not read

  StreamResult refused = GenerateAll(stub_.get(), request);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("capacity"));

  first_context->TryCancel();
  while (first->Read(&response)) {
  }
  first->Finish();
  ASSERT_TRUE(
      WaitFor([&] { return server_->scheduler().stats().active == 0; }));
  request.set_max_tokens(3);
  StreamResult admitted = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(admitted.status.ok()) << admitted.status.error_message();
  EXPECT_EQ(admitted.messages.size(), 3u);
}

// Whether a sample's last message has no token of its own: CANCELLED,
// TIME_LIMIT, and STOP_SEQUENCE unless the request included the stop text.
bool EndsWithoutToken(v1::FinishReason reason, bool include_stop) {
  return reason == v1::FINISH_REASON_CANCELLED ||
         reason == v1::FINISH_REASON_TIME_LIMIT ||
         (reason == v1::FINISH_REASON_STOP_SEQUENCE && !include_stop);
}

// The messages of a stream, with every packed message split into one
// unpacked message per token: the finish reason, model, version and usage go
// to the last of them (or, on an end without a token, to a token-less
// message of its own).
std::vector<v1::GenerateResponse> Unpack(
    const std::vector<v1::GenerateResponse>& messages,
    bool include_stop = false) {
  std::vector<v1::GenerateResponse> out;
  for (const v1::GenerateResponse& m : messages) {
    const bool tokenless_end =
        EndsWithoutToken(m.finish_reason(), include_stop);
    if (m.tokens().empty() && !tokenless_end) {
      out.push_back(m);  // not packed
      continue;
    }
    for (const v1::GeneratedToken& token : m.tokens()) {
      v1::GenerateResponse& one = out.emplace_back();
      one.set_sample_index(m.sample_index());
      one.set_text(token.text());
      one.set_id(token.id());
      one.set_position(token.position());
      one.set_logprob(token.logprob());
      *one.mutable_top_logprobs() = token.top_logprobs();
    }
    if (tokenless_end) {
      out.emplace_back().set_id(-1);
      out.back().set_sample_index(m.sample_index());
    }
    v1::GenerateResponse& last = out.back();
    last.set_finish_reason(m.finish_reason());
    last.set_model(m.model());
    last.set_version(m.version());
    last.set_prompt_tokens(m.prompt_tokens());
    last.set_generated_tokens(m.generated_tokens());
    last.set_seed(m.seed());
    last.set_stop_sequence(m.stop_sequence());
  }
  return out;
}

size_t TokenCount(const std::vector<v1::GenerateResponse>& messages) {
  size_t n = 0;
  for (const auto& m : messages) n += std::max(1, m.tokens_size());
  return n;
}

// What a packed message must look like whatever it carries: at least one
// token, the text of its tokens in `text`, the singular token fields unset.
void ExpectWellFormedPacked(const v1::GenerateResponse& m) {
  ASSERT_GE(m.tokens_size(), 1);
  std::string text;
  for (const v1::GeneratedToken& token : m.tokens()) text += token.text();
  EXPECT_EQ(m.text(), text);
  EXPECT_EQ(m.id(), -1);
  EXPECT_EQ(m.position(), 0);
  EXPECT_EQ(m.logprob(), 0.0f);
  EXPECT_TRUE(m.top_logprobs().empty());
}

TEST_F(GeneratorServiceTest, PackedMessagesCarryTheSameTokensInOrder) {
  StartServer();
  PublishAndLoad("names", 8, MakeCheckpoint(SmallConfig(), 8, 8));
  v1::GenerateRequest request;
  request.set_prompt("e");
  request.set_seed(42);
  request.set_temperature(1.0f);
  request.set_num_samples(3);
  request.set_top_logprobs(3);
  StreamResult unpacked = GenerateAll(stub_.get(), request);
  request.set_pack_tokens(true);
  StreamResult packed = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(unpacked.status.ok()) << unpacked.status.error_message();
  ASSERT_TRUE(packed.status.ok()) << packed.status.error_message();
  for (const v1::GenerateResponse& m : unpacked.messages) {
    EXPECT_TRUE(m.tokens().empty());
  }
  for (int i = 0; i < 3; ++i) {
    const std::vector<v1::GenerateResponse> sample =
        SampleMessages(packed.messages, i);
    ASSERT_FALSE(sample.empty());
    for (size_t k = 0; k < sample.size(); ++k) {
      ExpectWellFormedPacked(sample[k]);
      // The finish reason, model and version come with the last message.
      const bool last = k + 1 == sample.size();
      EXPECT_EQ(sample[k].finish_reason() != v1::FINISH_REASON_UNSPECIFIED,
                last);
      EXPECT_EQ(sample[k].version(), last ? 8 : 0);
    }
    const std::vector<v1::GenerateResponse> expected =
        SampleMessages(unpacked.messages, i);
    const std::vector<v1::GenerateResponse> got = Unpack(sample);
    ASSERT_EQ(got.size(), expected.size()) << "sample " << i;
    for (size_t t = 0; t < got.size(); ++t) {
      EXPECT_EQ(got[t].position(), static_cast<int>(t + 2));  // BOS, e, ...
      EXPECT_EQ(got[t].SerializeAsString(), expected[t].SerializeAsString())
          << "sample " << i << " token " << t << ":\n"
          << got[t].DebugString() << "vs\n"
          << expected[t].DebugString();
    }
  }
}

TEST_F(GeneratorServiceTest, TokensBufferedBehindASlowReaderArePacked) {
  StartServer();
  std::unique_ptr<v1::Generator::Stub> stub = SlowReaderStub();
  const int bos = static_cast<int>(Printable().size());
  constexpr int kSamples = 4;
  constexpr int kTokens = kSlowTokens;
  const ModelCheckpoint checkpoint = SlowReaderModel(31, 1);
  PublishAndLoad("names", 1, checkpoint);
  v1::GenerateRequest request = SlowReaderRequest(kSamples);
  request.set_pack_tokens(true);
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  std::vector<v1::GenerateResponse> messages(1);
  ASSERT_TRUE(reader->Read(messages.data()));
  // Stalled behind the reader: each sample's buffer (64 tokens) is full.
  EXPECT_LT(WaitForQuiescence(), kSamples * kTokens);
  v1::GenerateResponse response;
  while (reader->Read(&response)) messages.push_back(response);
  ASSERT_TRUE(reader->Finish().ok());

  ASSERT_EQ(TokenCount(messages), static_cast<size_t>(kSamples * kTokens));
  int widest = 0;
  for (const v1::GenerateResponse& m : messages) {
    ExpectWellFormedPacked(m);
    widest = std::max(widest, m.tokens_size());
  }
  // A full buffer went out in one message once the reader was back, not one
  // token per message.
  EXPECT_GT(widest, 1);
  EXPECT_LT(messages.size(), static_cast<size_t>(kSamples * kTokens));
  SamplingParams params;
  params.temperature = 1.0f;
  const Model model = ToModel(checkpoint);
  for (int i = 0; i < kSamples; ++i) {
    const std::vector<v1::GenerateResponse> sample =
        Unpack(SampleMessages(messages, i));
    ASSERT_EQ(sample.size(), static_cast<size_t>(kTokens));
    for (size_t t = 0; t < sample.size(); ++t) {
      EXPECT_EQ(sample[t].position(), static_cast<int>(t + 1));
    }
    EXPECT_EQ(sample.back().finish_reason(), v1::FINISH_REASON_BLOCK_SIZE);
    EXPECT_EQ(Ids(sample), ReferenceSample(model, bos, {}, params, 77 + i, 0))
        << "sample " << i;
  }
}

// Batching does not change results: a seeded stream gives the same tokens
// alone and as one of 64 streams stepped together, packed or not.
TEST_F(GeneratorServiceTest, SeededStreamGivesTheSameTokensAloneAndAmong63) {
  // The scheduler's loop waits in on_step while `hold` is set, so that the
  // test can queue the 64 streams before they are stepped together.
  absl::Mutex hold_mu;
  bool hold = false;
  std::atomic<int> widest{0};
  SchedulerOptions scheduler;
  scheduler.on_step = [&](int batch_size) {
    int seen = widest.load();
    while (batch_size > seen &&
           !widest.compare_exchange_weak(seen, batch_size)) {
    }
    absl::MutexLock lock(&hold_mu);
    hold_mu.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &hold));
  };
  StartServer(scheduler);
  // Never BOS: every stream runs to block_size, so the others outlast the
  // streams under test.
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(), 12);
  SteerBos(checkpoint, -10.0f);
  PublishAndLoad("names", 1, checkpoint);
  v1::GenerateRequest request;
  request.set_seed(7);
  request.set_temperature(1.0f);
  v1::GenerateRequest packed_request = request;
  packed_request.set_pack_tokens(true);

  StreamResult alone = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(alone.status.ok());
  StreamResult alone_packed = GenerateAll(stub_.get(), packed_request);
  ASSERT_TRUE(alone_packed.status.ok());
  SamplingParams params;
  params.temperature = 1.0f;
  const std::vector<int> reference =
      ReferenceSample(ToModel(checkpoint), kBos, {}, params, 7, 0);
  EXPECT_EQ(Ids(alone.messages), reference);
  EXPECT_EQ(Ids(Unpack(alone_packed.messages)), reference);
  ASSERT_EQ(widest.load(), 1);

  {
    absl::MutexLock lock(&hold_mu);
    hold = true;
  }
  auto queued = [&] {
    const SchedulerStats stats = server_->scheduler().stats();
    return stats.active + stats.queued;
  };
  // 62 others (half of them packed), then the two streams under test.
  std::vector<StreamResult> results(64);
  std::vector<std::thread> clients;
  for (int k = 0; k < 64; ++k) {
    v1::GenerateRequest call = k % 2 ? packed_request : request;
    if (k < 62) call.set_seed(1000 + k);
    clients.emplace_back([&, k, call] {
      results[k] = GenerateAll(stub_.get(), call, absl::Seconds(120));
    });
    if (k >= 61) {
      EXPECT_TRUE(
          WaitFor([&] { return queued() == k + 1; }, absl::Seconds(60)));
    }
  }
  {
    absl::MutexLock lock(&hold_mu);
    hold = false;
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(widest.load(), 64);  // all of them in one step
  for (int k = 0; k < 64; ++k) {
    ASSERT_TRUE(results[k].status.ok()) << results[k].status.error_message();
  }
  EXPECT_EQ(Ids(results[62].messages), reference);
  EXPECT_EQ(Ids(Unpack(results[63].messages)), reference);
}

TEST_F(GeneratorServiceTest, ListModelsReportsVersionsNewestFirst) {
  StartServer();
  PublishAndLoad("names", 100, MakeCheckpoint(SmallConfig(), 1, 100, 2.75));
  PublishAndLoad("names", 200, MakeCheckpoint(SmallConfig(), 2, 200, 2.5));
  PublishAndLoad("abc", 7, MakeCheckpoint(SmallConfig(8, 8), 3, 7, 1.0, "cab"));
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(
      stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  ASSERT_EQ(response.models_size(), 2);
  const v1::ModelInfo& abc = response.models(0);
  EXPECT_EQ(abc.name(), "abc");
  ASSERT_EQ(abc.versions_size(), 1);
  EXPECT_EQ(abc.config().n_embd(), 8);
  EXPECT_EQ(abc.config().block_size(), 8);
  EXPECT_EQ(abc.config().vocab_size(), 4);
  EXPECT_THAT(abc.vocab(), ::testing::ElementsAre("a", "b", "c"));

  const v1::ModelInfo& names = response.models(1);
  EXPECT_EQ(names.name(), "names");
  ASSERT_EQ(names.versions_size(), 2);
  EXPECT_EQ(names.versions(0).version(), 200);
  EXPECT_EQ(names.versions(0).step(), 200);
  EXPECT_DOUBLE_EQ(names.versions(0).loss(), 2.5);
  EXPECT_EQ(names.versions(1).version(), 100);
  EXPECT_DOUBLE_EQ(names.versions(1).loss(), 2.75);
  EXPECT_EQ(names.config().vocab_size(), 27);
  EXPECT_EQ(names.config().n_head(), 4);
  // Each version has its own config too.
  EXPECT_EQ(abc.versions(0).config().n_embd(), 8);
  EXPECT_EQ(names.versions(1).config().n_embd(), SmallConfig().n_embd);
  EXPECT_EQ(names.versions(1).config().vocab_size(), 27);
  EXPECT_EQ(names.vocab_size(), 26);
  EXPECT_EQ(names.vocab(0), "a");
}

// --- The generation contract: stopping, shaping, usage ----------------------

// The text of one sample's messages, concatenated.
std::string SampleText(const std::vector<v1::GenerateResponse>& messages,
                       int sample) {
  std::string text;
  for (const v1::GenerateResponse& m : SampleMessages(messages, sample)) {
    text += m.text();
  }
  return text;
}

class GenerationContractTest : public GeneratorServiceTest {
 protected:
  // A text model over three letters that never draws BOS, so that samples
  // are long and stop sequences occur in them.
  void LoadTextModel() {
    StartServer();
    ModelCheckpoint text = MakeCheckpoint(SmallConfig(16), 21, 1, 3.0, "abc");
    text.format = DatasetFormat::kText;
    SteerBos(text, -10.0f);
    PublishAndLoad("text", 1, text);
  }
  static v1::GenerateRequest TextRequest() {
    v1::GenerateRequest request;
    request.set_model("text");
    request.set_seed(5);
    request.set_temperature(1.0f);
    request.set_max_tokens(80);
    return request;
  }
  v1::GenerateResponse LastMessage(const v1::GenerateRequest& request,
                                   std::string* text) {
    StreamResult result = GenerateAll(stub_.get(), request);
    EXPECT_TRUE(result.status.ok()) << result.status.error_message();
    *text = SampleText(result.messages, 0);
    return result.messages.empty() ? v1::GenerateResponse()
                                   : result.messages.back();
  }
};

TEST_F(GenerationContractTest,
       StopSequencesEndTheSampleWithoutLeakingTheirStart) {
  LoadTextModel();
  std::string baseline;
  const v1::GenerateResponse plain = LastMessage(TextRequest(), &baseline);
  ASSERT_EQ(baseline.size(), 80u);
  EXPECT_EQ(plain.finish_reason(), v1::FINISH_REASON_MAX_TOKENS);
  // A stop sequence that occurs: the text ends before its first occurrence.
  const std::string stop = baseline.substr(20, 3);
  const size_t at = baseline.find(stop);
  for (const bool pack : {false, true}) {
    for (const bool include : {false, true}) {
      v1::GenerateRequest request = TextRequest();
      request.add_stop(stop);
      request.set_pack_tokens(pack);
      request.set_include_stop(include);
      StreamResult result = GenerateAll(stub_.get(), request);
      ASSERT_TRUE(result.status.ok()) << result.status.error_message();
      const std::string text = SampleText(result.messages, 0);
      EXPECT_EQ(text, baseline.substr(0, at + (include ? stop.size() : 0)))
          << "pack " << pack << " include_stop " << include;
      const v1::GenerateResponse& last = result.messages.back();
      EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_STOP_SEQUENCE);
      EXPECT_EQ(last.stop_sequence(), stop);
      EXPECT_EQ(last.generated_tokens(), static_cast<int>(at + stop.size()));
      EXPECT_EQ(last.prompt_tokens(), 0);
      EXPECT_EQ(last.seed(), 5u);
      if (!pack && !include) EXPECT_EQ(last.id(), -1);  // no token
      // Packed and unpacked streams carry the same messages.
      if (pack) {
        v1::GenerateRequest unpacked = request;
        unpacked.set_pack_tokens(false);
        StreamResult one = GenerateAll(stub_.get(), unpacked);
        const std::vector<v1::GenerateResponse> got =
            Unpack(result.messages, include);
        ASSERT_EQ(got.size(), one.messages.size());
        for (size_t t = 0; t < got.size(); ++t) {
          EXPECT_EQ(got[t].text(), one.messages[t].text());
          EXPECT_EQ(got[t].id(), one.messages[t].id());
          EXPECT_EQ(got[t].finish_reason(), one.messages[t].finish_reason());
        }
      }
    }
  }
  // A stop sequence whose start occurs but which never completes: the held
  // back text is sent, nothing is lost.
  for (const char c : std::string("abc")) {
    const std::string never = baseline.substr(20, 3) + c;
    if (baseline.find(never) != std::string::npos) continue;
    v1::GenerateRequest request = TextRequest();
    request.add_stop(never);
    std::string text;
    const v1::GenerateResponse last = LastMessage(request, &text);
    EXPECT_EQ(text, baseline);
    EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_MAX_TOKENS);
    EXPECT_EQ(last.stop_sequence(), "");
  }
  // min_tokens: an occurrence that completes before it does not count.
  v1::GenerateRequest later = TextRequest();
  later.add_stop(stop);
  later.set_min_tokens(static_cast<int>(at + stop.size()) + 1);
  std::string text;
  const v1::GenerateResponse last = LastMessage(later, &text);
  const size_t next = baseline.find(stop, at + 1);
  if (next != std::string::npos && next + stop.size() >= at + stop.size() + 1) {
    EXPECT_EQ(text, baseline.substr(0, next));
    EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_STOP_SEQUENCE);
  } else {
    EXPECT_EQ(text, baseline);
  }
}

TEST_F(GenerationContractTest,
       OverlappingStopSequencesEndAtTheFirstCompletion) {
  LoadTextModel();
  std::string baseline;
  LastMessage(TextRequest(), &baseline);
  // Two stops that share characters; the earliest to complete wins.
  const std::string first = baseline.substr(30, 4);
  const std::string second = baseline.substr(31, 2);
  const size_t end = std::min(baseline.find(first) + first.size(),
                              baseline.find(second) + second.size());
  v1::GenerateRequest request = TextRequest();
  request.add_stop(first);
  request.add_stop(second);
  request.set_include_stop(true);
  std::string text;
  const v1::GenerateResponse last = LastMessage(request, &text);
  EXPECT_EQ(text, baseline.substr(0, end));
  EXPECT_THAT(last.stop_sequence(), ::testing::AnyOf(first, second));
  EXPECT_TRUE(absl::EndsWith(text, last.stop_sequence()));
}

TEST_F(GenerationContractTest, MinTokensMasksBos) {
  StartServer();
  ModelCheckpoint checkpoint = MakeCheckpoint(SmallConfig(), 8);
  SteerBos(checkpoint, 10.0f);  // BOS at once, almost surely
  PublishAndLoad("names", 1, checkpoint);
  v1::GenerateRequest request;
  request.set_seed(3);
  request.set_num_samples(4);
  request.set_temperature(1.0f);
  request.set_prompt("ab");
  StreamResult quick = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(quick.status.ok());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(SampleMessages(quick.messages, i).back().generated_tokens(), 1);
  }
  request.set_min_tokens(6);
  StreamResult held = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(held.status.ok()) << held.status.error_message();
  for (int i = 0; i < 4; ++i) {
    const std::vector<v1::GenerateResponse> sample =
        SampleMessages(held.messages, i);
    const v1::GenerateResponse& last = sample.back();
    EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_BOS);
    EXPECT_EQ(last.generated_tokens(), 7);  // six characters, then BOS
    EXPECT_EQ(SampleText(held.messages, i).size(), 6u);
    EXPECT_EQ(last.prompt_tokens(), 2);
    EXPECT_EQ(last.seed(), 3u + i);
  }
}

// (SchedulerTest.ATimeLimitEndsWaitingSequences: the same for a reader that
// does not keep up, and for a queued sample.)
TEST_F(GenerationContractTest, ATimeLimitEndsALongSample) {
  StartServer();
  // Wide enough that 4,000 tokens take far longer than the limit.
  ModelCheckpoint text =
      MakeCheckpoint(SmallConfig(128, 128), 21, 1, 3.0, "abc");
  text.format = DatasetFormat::kText;
  SteerBos(text, -10.0f);
  PublishAndLoad("text", 1, text);
  v1::GenerateRequest request = TextRequest();
  request.set_max_tokens(4000);
  request.set_time_limit_ms(20);
  const absl::Time start = absl::Now();
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  const v1::GenerateResponse& last = result.messages.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_TIME_LIMIT);
  EXPECT_EQ(last.id(), -1);  // no token
  EXPECT_LT(last.generated_tokens(), 4000);
  EXPECT_EQ(static_cast<int>(result.messages.size()) - 1,
            last.generated_tokens());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(GenerationContractTest, EveryNewFieldIsSeededAndReproducible) {
  LoadTextModel();
  v1::GenerateRequest request = TextRequest();
  request.set_prompt("abcab");
  request.set_num_samples(3);
  request.add_stop("cc");
  request.set_include_stop(true);
  request.set_min_tokens(3);
  request.set_time_limit_ms(60000);
  request.set_min_p(0.05f);
  request.set_repetition_penalty(1.3f);
  request.set_presence_penalty(0.4f);
  request.set_frequency_penalty(0.2f);
  (*request.mutable_logit_bias())["a"] = -1.5f;
  (*request.mutable_logit_bias())[""] = -5.0f;
  request.set_regex("[abc]*(cc)?");
  request.set_prompt_logprobs(true);
  StreamResult first = GenerateAll(stub_.get(), request);
  StreamResult second = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_TRUE(second.status.ok());
  for (int i = 0; i < 3; ++i) {
    const std::vector<v1::GenerateResponse> a =
        SampleMessages(first.messages, i);
    const std::vector<v1::GenerateResponse> b =
        SampleMessages(second.messages, i);
    ASSERT_EQ(a.size(), b.size());
    for (size_t t = 0; t < a.size(); ++t) {
      EXPECT_EQ(a[t].SerializeAsString(), b[t].SerializeAsString());
    }
    EXPECT_EQ(a.back().prompt_tokens(), 5);
    // The reported seed reproduces the sample alone.
    v1::GenerateRequest alone = request;
    alone.set_num_samples(1);
    alone.set_seed(a.back().seed());
    StreamResult again = GenerateAll(stub_.get(), alone);
    EXPECT_EQ(SampleText(again.messages, 0), SampleText(first.messages, i));
  }
  // The shaping changed the samples (a bias of -1.5 on one of three letters).
  v1::GenerateRequest unshaped = TextRequest();
  unshaped.set_prompt("abcab");
  unshaped.set_num_samples(3);
  StreamResult plain = GenerateAll(stub_.get(), unshaped);
  int a_shaped = 0, a_plain = 0;
  for (int i = 0; i < 3; ++i) {
    for (char c : SampleText(first.messages, i)) a_shaped += c == 'a';
    for (char c : SampleText(plain.messages, i)) a_plain += c == 'a';
  }
  EXPECT_LT(a_shaped, a_plain);
}

TEST_F(GenerationContractTest, BadValuesOfEveryNewFieldNameTheField) {
  LoadTextModel();
  const std::vector<
      std::pair<std::function<void(v1::GenerateRequest&)>, std::string>>
      cases = {
          {[](auto& r) {
             for (int i = 0; i < 9; ++i) r.add_stop("ab");
           },
           "stop has 9 strings, more than the limit of 8"},
          {[](auto& r) { r.add_stop(""); }, "stop[0] must have 1 to 64 bytes"},
          {[](auto& r) { r.add_stop(std::string(65, 'a')); },
           "stop[0] must have 1 to 64 bytes, got 65"},
          {[](auto& r) { r.add_stop("abz"); }, "stop[0]: "},
          {[](auto& r) { r.set_min_tokens(81); },
           "min_tokens must be in [0, 80]"},
          {[](auto& r) { r.set_min_tokens(-1); }, "min_tokens must be in"},
          {[](auto& r) { r.set_time_limit_ms(-1); },
           "time_limit_ms must be in [0, 3600000]"},
          {[](auto& r) { r.set_time_limit_ms(3600001); },
           "time_limit_ms must be in [0, 3600000]"},
          {[](auto& r) { r.set_min_p(-0.1f); }, "min_p must be in [0, 1]"},
          {[](auto& r) { r.set_repetition_penalty(0); },
           "repetition_penalty must be in (0, 10]"},
          {[](auto& r) { r.set_presence_penalty(3); },
           "presence_penalty must be in [-2, 2]"},
          {[](auto& r) { r.set_frequency_penalty(-3); },
           "frequency_penalty must be in [-2, 2]"},
          {[](auto& r) { (*r.mutable_logit_bias())["ab"] = 1; },
           "logit_bias: the key \"ab\" must be one character"},
          {[](auto& r) { (*r.mutable_logit_bias())["z"] = 1; },
           "logit_bias: the key \"z\""},
          {[](auto& r) { (*r.mutable_logit_bias())["a"] = 1000; },
           "must be in [-100, 100]"},
      };
  for (const auto& [mutate, message] : cases) {
    v1::GenerateRequest request = TextRequest();
    mutate(request);
    StreamResult result = GenerateAll(stub_.get(), request);
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << message;
    EXPECT_THAT(result.status.error_message(), HasSubstr(message));
  }
  // Serving goes on.
  EXPECT_TRUE(GenerateAll(stub_.get(), TextRequest()).status.ok());
}

TEST_F(GenerationContractTest, RegexSamplesAllMatchTheWholePattern) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  v1::GenerateRequest request;
  request.set_temperature(1.0f);
  request.set_num_samples(64);
  request.set_regex("[aeiou][b-df-hj-np-tv-z]{2,5}(ing|ed)?");
  // An independent engine: std::regex (ECMAScript) on the same pattern.
  const std::regex reference(request.regex());
  int bos_ends = 0;
  for (uint64_t seed : {1, 2, 3}) {
    request.set_seed(seed);
    StreamResult result = GenerateAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    for (int i = 0; i < 64; ++i) {
      const std::string text = SampleText(result.messages, i);
      const v1::GenerateResponse last =
          SampleMessages(result.messages, i).back();
      if (last.finish_reason() == v1::FINISH_REASON_BOS) {
        ++bos_ends;
        EXPECT_TRUE(std::regex_match(text, reference)) << text;
      } else {
        // Cut by the block: a prefix of a match.
        EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_BLOCK_SIZE) << text;
      }
    }
  }
  EXPECT_GT(bos_ends, 150);
}

TEST_F(GenerationContractTest, TheMaskedDistributionRenormalises) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  // The first character must be a vowel: its distribution is the model's
  // over the five vowels, renormalised (temperature 1, raw logprobs from
  // top_logprobs).
  v1::GenerateRequest request;
  request.set_temperature(1.0f);
  request.set_num_samples(64);
  request.set_max_tokens(2);  // a vowel, then anything (a BOS-ended 1 fits)
  request.set_regex("[aeiou][a-z]*");
  request.set_top_logprobs(27);
  std::map<std::string, int> counts;
  std::map<std::string, double> expected;
  int draws = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    request.set_seed(seed * 64);
    StreamResult result = GenerateAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    for (int i = 0; i < 64; ++i) {
      const v1::GenerateResponse m = SampleMessages(result.messages, i)[0];
      ++counts[m.text()];
      ++draws;
      if (expected.empty()) {
        double total = 0;
        for (const v1::TokenLogprob& t : m.top_logprobs()) {
          if (std::string("aeiou").find(t.text()) != std::string::npos &&
              !t.text().empty()) {
            expected[t.text()] = std::exp(t.logprob());
            total += expected[t.text()];
          }
        }
        for (auto& [c, p] : expected) p /= total;
      }
    }
  }
  ASSERT_EQ(expected.size(), 5u);
  for (const auto& [c, n] : counts) EXPECT_EQ(expected.count(c), 1u) << c;
  for (const auto& [c, p] : expected) {
    EXPECT_NEAR(counts[c] / static_cast<double>(draws), p, 0.035) << c;
  }
}

TEST_F(GenerationContractTest, RegexErrorsAndDeadEnds) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  auto status_of = [&](const std::string& regex) {
    v1::GenerateRequest request;
    request.set_regex(regex);
    return GenerateAll(stub_.get(), request).status;
  };
  const grpc::Status bad = status_of("([a-z]");
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(),
              HasSubstr("regex: missing closing parenthesis at offset 6"));
  const grpc::Status digits = status_of("[0-9]+");
  EXPECT_EQ(digits.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(digits.error_message(),
              HasSubstr("no text of at most 15 characters of the model's "
                        "vocabulary matches"));  // block_size 16, BOS last
  // "b" matches, but once "a" is drawn only a digit could follow.
  v1::GenerateRequest request;
  request.set_regex("b|a[0-9]");
  (*request.mutable_logit_bias())["a"] = 100.0f;
  request.set_seed(1);
  StreamResult result = GenerateAll(stub_.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_EQ(result.messages.size(), 2u);
  EXPECT_EQ(result.messages[0].text(), "a");
  EXPECT_EQ(result.messages[1].finish_reason(), v1::FINISH_REASON_NO_MATCH);
  EXPECT_EQ(result.messages[1].id(), -1);
  EXPECT_EQ(result.messages[1].generated_tokens(), 1);
}

// --- Score and prompt_logprobs -------------------------------------------

class ScoreTest : public GenerationContractTest {
 protected:
  v1::ScoreResponse ScoreOf(const v1::ScoreRequest& request,
                            grpc::Status* status = nullptr) {
    grpc::ClientContext context;
    v1::ScoreResponse response;
    const grpc::Status s = stub_->Score(&context, request, &response);
    if (status != nullptr) *status = s;
    EXPECT_TRUE(status != nullptr || s.ok()) << s.error_message();
    return response;
  }
  // The logprob of each generated token of sample 0, by stream position.
  static std::map<int, float> GeneratedLogprobs(const StreamResult& result) {
    std::map<int, float> out;
    for (const v1::GenerateResponse& m : SampleMessages(result.messages, 0)) {
      if (m.id() >= 0) out[m.position()] = m.logprob();
    }
    return out;
  }
  void ExpectScoreEqualsGenerate(const std::string& model, int max_tokens) {
    v1::GenerateRequest generate;
    generate.set_model(model);
    generate.set_prompt("ab");
    generate.set_seed(11);
    generate.set_temperature(1.0f);
    generate.set_max_tokens(max_tokens);
    StreamResult result = GenerateAll(stub_.get(), generate);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    const std::map<int, float> generated = GeneratedLogprobs(result);
    v1::ScoreRequest score;
    score.set_model(model);
    score.add_texts("ab" + SampleText(result.messages, 0));
    const v1::ScoreResponse response = ScoreOf(score);
    ASSERT_EQ(response.scores_size(), 1);
    int compared = 0;
    for (const v1::GeneratedToken& token : response.scores(0).tokens()) {
      auto it = generated.find(token.position());
      if (it == generated.end()) continue;
      EXPECT_NEAR(token.logprob(), it->second, 2e-4)
          << model << " position " << token.position();
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int>(generated.size())) << model;
  }
};

TEST_F(ScoreTest, ScoreEqualsTheLogprobsGenerateReports) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  ModelCheckpoint text = MakeCheckpoint(SmallConfig(16), 21, 1, 3.0, "abc");
  text.format = DatasetFormat::kText;
  SteerBos(text, -10.0f);
  PublishAndLoad("text", 1, text);
  // A documents sample, its final BOS included.
  ExpectScoreEqualsGenerate("names", 0);
  // A text sample of 70 tokens past block_size 16: the windows must agree.
  ExpectScoreEqualsGenerate("text", 70);
  // A text model scores nothing of an empty text or of one character.
  v1::ScoreRequest trivial;
  trivial.set_model("text");
  trivial.add_texts("");
  trivial.add_texts("a");
  const v1::ScoreResponse response = ScoreOf(trivial);
  ASSERT_EQ(response.scores_size(), 2);
  for (const v1::TextScore& score : response.scores()) {
    EXPECT_EQ(score.tokens_size(), 0);
    EXPECT_EQ(score.perplexity(), 1.0);
  }
}

TEST_F(ScoreTest, ScoresSumsAndPerplexity) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  v1::ScoreRequest request;
  request.add_texts("emma");
  request.add_texts("");
  request.add_texts("olivia");
  request.set_top_logprobs(3);
  const v1::ScoreResponse response = ScoreOf(request);
  EXPECT_EQ(response.model(), "names");
  EXPECT_EQ(response.version(), 1);
  ASSERT_EQ(response.scores_size(), 3);
  // Documents: every character, then the final BOS.
  EXPECT_EQ(response.scores(0).tokens_size(), 5);
  EXPECT_EQ(response.scores(1).tokens_size(), 1);  // only the end
  EXPECT_EQ(response.scores(2).tokens_size(), 7);
  for (const v1::TextScore& score : response.scores()) {
    double sum = 0;
    int position = 1;
    for (const v1::GeneratedToken& token : score.tokens()) {
      sum += token.logprob();
      EXPECT_EQ(token.position(), position++);
      EXPECT_LE(token.logprob(), 0);
      ASSERT_EQ(token.top_logprobs_size(), 3);
      EXPECT_GE(token.top_logprobs(0).logprob(), token.logprob());
    }
    EXPECT_EQ(score.tokens().rbegin()->text(), "");  // BOS
    EXPECT_NEAR(score.sum_logprob(), sum, 1e-4);
    EXPECT_NEAR(score.mean_logprob(), sum / score.tokens_size(), 1e-6);
    EXPECT_NEAR(score.perplexity(), std::exp(-score.mean_logprob()), 1e-6);
  }
  EXPECT_EQ(response.scores(0).tokens(0).text(), "e");
}

TEST_F(ScoreTest, PromptLogprobsAreThePromptsScores) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  v1::ScoreRequest score;
  score.add_texts("emmanuel");
  const v1::ScoreResponse scored = ScoreOf(score);
  for (const bool pack : {false, true}) {
    v1::GenerateRequest request;
    request.set_prompt("emmanuel");
    request.set_prompt_logprobs(true);
    request.set_num_samples(2);
    request.set_seed(3);
    request.set_pack_tokens(pack);
    StreamResult result = GenerateAll(stub_.get(), request);
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    for (int i = 0; i < 2; ++i) {
      std::vector<v1::GeneratedToken> prompt;
      bool generated_seen = false;
      for (const v1::GenerateResponse& m : SampleMessages(result.messages, i)) {
        if (!m.prompt_logprobs().empty()) {
          EXPECT_FALSE(generated_seen);  // before the generated tokens
          if (!pack) EXPECT_EQ(m.id(), -1);
        }
        prompt.insert(prompt.end(), m.prompt_logprobs().begin(),
                      m.prompt_logprobs().end());
        generated_seen = generated_seen || m.id() >= 0 || !m.tokens().empty();
      }
      ASSERT_EQ(prompt.size(), 8u) << "pack " << pack;
      for (size_t t = 0; t < prompt.size(); ++t) {
        EXPECT_EQ(prompt[t].text(), scored.scores(0).tokens(t).text());
        EXPECT_EQ(prompt[t].position(), scored.scores(0).tokens(t).position());
        EXPECT_NEAR(prompt[t].logprob(), scored.scores(0).tokens(t).logprob(),
                    1e-5);
      }
    }
  }
}

TEST_F(ScoreTest, BadScoreRequestsNameTheField) {
  StartServer();
  PublishAndLoad("names", 1, MakeCheckpoint(SmallConfig(), 8));
  auto status_of = [&](const v1::ScoreRequest& request) {
    grpc::Status status;
    ScoreOf(request, &status);
    return status;
  };
  v1::ScoreRequest none;
  EXPECT_THAT(status_of(none).error_message(),
              HasSubstr("texts must have 1 to 64 texts, got 0"));
  v1::ScoreRequest oov;
  oov.add_texts("e!");
  EXPECT_EQ(status_of(oov).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status_of(oov).error_message(), HasSubstr("texts[0]: "));
  v1::ScoreRequest long_text;
  long_text.add_texts(std::string(16, 'a'));
  EXPECT_THAT(status_of(long_text).error_message(),
              HasSubstr("texts[0] has 16 characters; a documents model scores "
                        "at most block_size - 1 = 15"));
  v1::ScoreRequest top;
  top.add_texts("a");
  top.set_top_logprobs(28);
  EXPECT_THAT(status_of(top).error_message(),
              HasSubstr("top_logprobs must be in [0, vocab_size = 27]"));
  v1::ScoreRequest missing;
  missing.set_model("nope");
  missing.add_texts("a");
  EXPECT_EQ(status_of(missing).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ScoreTest, ACallThatGoesAwayStopsItsSequences) {
  StartServer();
  ModelCheckpoint text =
      MakeCheckpoint(SmallConfig(128, 128), 21, 1, 3.0, "abc");
  text.format = DatasetFormat::kText;
  PublishAndLoad("text", 1, text);
  v1::ScoreRequest request;
  for (int i = 0; i < 64; ++i)
    request.add_texts(std::string(8000, 'a' + i % 3));
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)));
  v1::ScoreResponse response;
  const grpc::Status status = stub_->Score(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server drops the texts' sequences and goes on serving.
  EXPECT_TRUE(
      WaitFor([&] { return server_->scheduler().stats().active == 0; }));
  v1::ScoreRequest small;
  small.add_texts("abc");
  EXPECT_EQ(ScoreOf(small).scores_size(), 1);
}

}  // namespace
}  // namespace microgpt
