// The generator's /metrics endpoint: started with the server, scraped over
// HTTP, and its series move with the work the server does.
#include "generator/generator_metrics.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "generator/generator_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/generator/test_util.h"
#include "tests/metrics_scrape.h"

namespace microgpt {
namespace {

using ::microgpt::testing::ExpectProcessMetrics;
using ::microgpt::testing::GenerateAll;
using ::microgpt::testing::MakeCheckpoint;
using ::microgpt::testing::Publish;
using ::microgpt::testing::SampleValue;
using ::microgpt::testing::ScrapeMetrics;
using ::microgpt::testing::SmallConfig;
using ::microgpt::testing::TempDir;
using ::microgpt::testing::WaitFor;
using ::testing::HasSubstr;
using ::testing::Optional;

GeneratorServerOptions Options(const std::string& root) {
  GeneratorServerOptions options;
  options.server.host = "127.0.0.1";
  options.server.port = 0;
  options.checkpoint_root = root;
  options.poll_interval = absl::ZeroDuration();
  options.metrics_address = "127.0.0.1:0";
  return options;
}

double Value(const std::string& page, const std::string& series) {
  return SampleValue(page, series).value_or(-1);
}

TEST(GeneratorMetricsTest, SeriesExistAndMoveWithTheWork) {
  TempDir root;
  Publish(root.path(), "names", 1, MakeCheckpoint(SmallConfig(), 1));
  auto server = GeneratorServer::Create(Options(root.path()));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->models().PollOnce().ok());
  ASSERT_TRUE((*server)->Start().ok());
  const int port = (*server)->metrics_port();
  ASSERT_GT(port, 0);

  const std::string before = ScrapeMetrics(port);
  ASSERT_FALSE(before.empty());
  EXPECT_THAT(before,
              HasSubstr("# TYPE microgpt_generator_batch_size histogram"));
  ExpectProcessMetrics(before, "generator");

  // The per-model series start with a model's first call.
  EXPECT_EQ(SampleValue(before,
                        "microgpt_generator_tokens_generated_total{model="
                        "\"names\"}"),
            std::nullopt);
  EXPECT_THAT(SampleValue(before, "microgpt_generator_active_streams"),
              Optional(0.0));
  EXPECT_THAT(SampleValue(before, "microgpt_generator_queued_sequences"),
              Optional(0.0));
  EXPECT_THAT(SampleValue(before, "microgpt_generator_loaded_versions"),
              Optional(1.0));
  EXPECT_THAT(SampleValue(before,
                          "microgpt_generator_model_version_loaded{model="
                          "\"names\",version=\"1\"}"),
              Optional(1.0));

  auto stub = v1::Generator::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()),
                          grpc::InsecureChannelCredentials()));
  v1::GenerateRequest request;
  request.set_model("names");
  request.set_num_samples(4);
  request.set_max_tokens(6);
  request.set_seed(7);
  const auto result = GenerateAll(stub.get(), request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  int tokens = 0;
  for (const auto& message : result.messages) tokens += message.id() >= 0;
  ASSERT_GT(tokens, 4);

  v1::GenerateRequest missing;
  missing.set_model("no-such-model");
  EXPECT_EQ(GenerateAll(stub.get(), missing).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    ASSERT_TRUE(
        stub->ListModels(&context, v1::ListModelsRequest(), &models).ok());
  }

  // A call's status is counted as it is sent, so the client may see it first.
  std::string after;
  EXPECT_TRUE(WaitFor([&] {
    after = ScrapeMetrics(port);
    // Refused before a model was found: no model label (the name asked
    // for is nobody's).
    return Value(after,
                 "microgpt_generator_requests_total{code=\"NOT_FOUND\","
                 "method=\"Generate\",model=\"\"}") == 1 &&
           Value(after, "microgpt_generator_active_streams") == 0;
  })) << after;
  EXPECT_THAT(SampleValue(after,
                          "microgpt_generator_requests_total{code="
                          "\"OK\",method=\"Generate\",model=\"names\"}"),
              Optional(1.0));
  EXPECT_THAT(SampleValue(after,
                          "microgpt_generator_requests_total{code="
                          "\"OK\",method=\"ListModels\",model=\"\"}"),
              Optional(1.0));
  EXPECT_THAT(SampleValue(after,
                          "microgpt_generator_tokens_generated_total{model="
                          "\"names\"}"),
              Optional(static_cast<double>(tokens)));
  EXPECT_THAT(after, ::testing::Not(HasSubstr("no-such-model")));
  // Every sample's first token, then the gaps between the others.
  EXPECT_THAT(
      SampleValue(after,
                  "microgpt_generator_time_to_first_token_seconds_count{"
                  "model=\"names\"}"),
      Optional(4.0));
  EXPECT_THAT(
      SampleValue(after,
                  "microgpt_generator_inter_token_latency_seconds_count{"
                  "model=\"names\"}"),
      Optional(static_cast<double>(tokens - 4)));
  EXPECT_GT(Value(after,
                  "microgpt_generator_time_to_first_token_seconds_sum{model="
                  "\"names\"}"),
            0);
  // The four samples ran in one batch: every step advanced four sequences
  // while they all lived, and the steps fed BOS plus up to six tokens.
  const double steps = Value(after, "microgpt_generator_batch_size_count");
  EXPECT_GE(steps, 2);
  EXPECT_EQ(Value(after, "microgpt_generator_scheduler_steps_total"), steps);
  EXPECT_LE(Value(after, "microgpt_generator_batch_size_sum"), 4 * steps);
  EXPECT_GE(Value(after, "microgpt_generator_batch_size_sum"), tokens);
  EXPECT_THAT(SampleValue(after,
                          "microgpt_generator_batch_size_bucket{le="
                          "\"4\"}"),
              Optional(steps));
  EXPECT_THAT(SampleValue(after,
                          "microgpt_generator_model_loads_total{"
                          "result=\"ok\"}"),
              Optional(1.0));

  (*server)->RequestShutdown();
  (*server)->WaitForShutdown();
}

TEST(GeneratorMetricsTest, NoEndpointWithoutAnAddress) {
  TempDir root;
  GeneratorServerOptions options = Options(root.path());
  options.metrics_address.clear();
  auto server = GeneratorServer::Create(options);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->Start().ok());
  EXPECT_EQ((*server)->metrics_port(), 0);
}

TEST(GeneratorMetricsTest, AnAddressInUseFailsStart) {
  TempDir root;
  auto first = GeneratorServer::Create(Options(root.path()));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->Start().ok());
  GeneratorServerOptions options = Options(root.path());
  options.metrics_address =
      "127.0.0.1:" + std::to_string((*first)->metrics_port());
  auto second = GeneratorServer::Create(options);
  ASSERT_TRUE(second.ok());
  const absl::Status status = (*second)->Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

}  // namespace
}  // namespace microgpt
