// ServerRunner's message size limit (server/server_runner.h), on an in-process
// server with a stub Generator service: a request larger than
// max_message_bytes fails with RESOURCE_EXHAUSTED before any handler runs, and
// the server goes on serving the next calls on the same channel.
#include "server/server_runner.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"

namespace microgpt {
namespace {

using ::testing::HasSubstr;

// Answers every call at once with OK (Generate with no token) and counts the
// Generate calls that reached it.
class StubGenerator final : public v1::Generator::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext*, const v1::GenerateRequest*) override {
    ++generate_calls;
    class Done final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
     public:
      Done() { Finish(grpc::Status::OK); }
      void OnDone() override { delete this; }
    };
    return new Done();
  }
  // ListModels answers with one model named `list_name`.
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* context, const v1::ListModelsRequest*,
      v1::ListModelsResponse* response) override {
    response->add_models()->set_name(list_name);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::atomic<int> generate_calls{0};
  std::string list_name = "m";
};

grpc::Status Generate(v1::Generator::Stub& stub, const std::string& prompt) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  v1::GenerateRequest request;
  request.set_prompt(prompt);
  auto reader = stub.Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

// A Generator stub on a plaintext channel to `runner`.
std::unique_ptr<v1::Generator::Stub> StubOf(const ServerRunner& runner) {
  return v1::Generator::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", runner.port()),
                          grpc::InsecureChannelCredentials()));
}

TEST(ServerRunnerTest, OversizedRequestIsResourceExhaustedAndServingGoesOn) {
  StubGenerator service;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.max_message_bytes = 1024;
  ServerRunner runner(options);
  runner.AddService(&service, v1::Generator::service_full_name());
  ASSERT_TRUE(runner.Start("test").ok());
  auto stub = StubOf(runner);

  const grpc::Status oversized = Generate(*stub, std::string(2000, 'a'));
  EXPECT_EQ(oversized.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << oversized.error_message();
  EXPECT_THAT(oversized.error_message(), HasSubstr("1024"));
  EXPECT_EQ(service.generate_calls.load(), 0);

  // The same channel: a request under the limit, then a unary call.
  EXPECT_TRUE(Generate(*stub, std::string(900, 'a')).ok());
  EXPECT_EQ(service.generate_calls.load(), 1);
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  EXPECT_TRUE(stub->ListModels(&context, {}, &models).ok());
}

TEST(ServerRunnerTest, ResponsesAreNotLimitedByTheRequestLimit) {
  // A trainer with a small --max_message_bytes still sends 1 MiB checkpoint
  // chunks: the limit applies to what clients send.
  StubGenerator service;
  service.list_name = std::string(4096, 'n');
  ServerOptions options;
  options.host = "127.0.0.1";
  options.max_message_bytes = 1024;
  ServerRunner runner(options);
  runner.AddService(&service, v1::Generator::service_full_name());
  ASSERT_TRUE(runner.Start("test").ok());
  auto stub = StubOf(runner);
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  const grpc::Status status = stub->ListModels(&context, {}, &models);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(models.models(0).name().size(), 4096u);
}

TEST(ServerRunnerTest, NonPositiveMessageLimitIsAStartError) {
  StubGenerator service;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.max_message_bytes = 0;
  ServerRunner runner(options);
  runner.AddService(&service, v1::Generator::service_full_name());
  const absl::Status status = runner.Start("test");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("max message size"));
}

// A port another server listens on is refused, naming the address: with
// gRPC's default SO_REUSEPORT the second server started and took a share of
// the first one's calls.
TEST(ServerRunnerTest, APortInUseIsRefusedNamingTheAddress) {
  StubGenerator first_service, second_service;
  ServerOptions options;
  options.host = "127.0.0.1";
  ServerRunner first(options);
  first.AddService(&first_service, v1::Generator::service_full_name());
  ASSERT_TRUE(first.Start("first").ok());

  options.port = first.port();
  ServerRunner second(options);
  second.AddService(&second_service, v1::Generator::service_full_name());
  const absl::Status status = second.Start("second");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(
      std::string(status.message()),
      HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", first.port())));
  // Every call still reaches the first server.
  auto stub = StubOf(first);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Generate(*stub, "x").ok());
  EXPECT_EQ(first_service.generate_calls.load(), 20);
  EXPECT_EQ(second_service.generate_calls.load(), 0);
}

}  // namespace
}  // namespace microgpt
