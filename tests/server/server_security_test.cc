// The bearer-token check and TLS of ServerRunner (server/security.h), on an
// in-process server with a stub Generator service: no token or a wrong one
// is UNAUTHENTICATED, the right one passes, health stays open; a TLS server
// (self-signed certificate made with the openssl CLI) serves TLS clients and
// refuses plaintext ones.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/rpc_method.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "server/security.h"
#include "server/server_runner.h"

namespace microgpt {
namespace {

class StubGenerator final : public v1::Generator::CallbackService {
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest*,
                                       v1::ListModelsResponse*) override {
    // The processor consumes the token: handlers never see it.
    EXPECT_EQ(context->client_metadata().count("authorization"), 0u);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

grpc::StatusCode ListModels(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& token) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::ListModelsResponse response;
  return v1::Generator::NewStub(channel)
      ->ListModels(&context, v1::ListModelsRequest(), &response)
      .error_code();
}

std::shared_ptr<grpc::Channel> Plaintext(int port) {
  return grpc::CreateChannel(absl::StrCat("localhost:", port),
                             grpc::InsecureChannelCredentials());
}

class SecurityTest : public ::testing::Test {
 protected:
  void StartServer(ServerSecurity security) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.security = std::move(security);
    runner_ = std::make_unique<ServerRunner>(options);
    runner_->AddService(&service_, v1::Generator::service_full_name());
    ASSERT_TRUE(runner_->Start("test").ok());
    runner_->SetServing(true);
  }
  StubGenerator service_;
  std::unique_ptr<ServerRunner> runner_;
};

TEST_F(SecurityTest, BearerToken) {
  StartServer({.auth_token = "s3cret-token"});
  auto channel = Plaintext(runner_->port());
  EXPECT_EQ(ListModels(channel, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(channel, "wrong"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(channel, "s3cret-tokenX"),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(channel, "s3cret-token"), grpc::StatusCode::OK);

  // grpc.health.v1.Health/Check by hand (no generated health stubs here):
  // request {service: 1}, response {status: 1} is SERVING.
  const std::string name = v1::Generator::service_full_name();
  const std::string request_bytes =
      std::string("\x0a", 1) + static_cast<char>(name.size()) + name;
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                         grpc::internal::RpcMethod::NORMAL_RPC);
  ASSERT_TRUE(
      (grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
           channel.get(), method, &context, request, &response))
          .ok());
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string response_bytes;
  for (const grpc::Slice& s : slices) {
    response_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_EQ(response_bytes, std::string("\x08\x01", 2));  // SERVING
}

TEST_F(SecurityTest, NoTokenConfiguredIsOpen) {
  StartServer({});
  EXPECT_EQ(ListModels(Plaintext(runner_->port()), ""), grpc::StatusCode::OK);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(SecurityTest, Tls) {
  const std::string dir = ::testing::TempDir() + "/server_security_test";
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  ASSERT_EQ(
      std::system(
          absl::StrCat("mkdir -p ", dir,
                       " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
                       "-subj /CN=localhost -addext "
                       "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout ",
                       key, " -out ", cert, " 2>/dev/null")
              .c_str()),
      0);
  StartServer(
      {.tls_cert_file = cert, .tls_key_file = key, .auth_token = "tok"});
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(cert);
  auto tls = grpc::CreateChannel(absl::StrCat("localhost:", runner_->port()),
                                 grpc::SslCredentials(ssl));
  EXPECT_EQ(ListModels(tls, "tok"), grpc::StatusCode::OK);
  EXPECT_EQ(ListModels(tls, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListModels(Plaintext(runner_->port()), "tok"),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(SecurityHelpersTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(IsOpenMethod("/grpc.health.v1.Health/Check"));
  EXPECT_FALSE(IsOpenMethod("/microgpt.v1.Trainer/StartTraining"));
}

TEST(SecurityHelpersTest, HalfTlsConfigIsAnError) {
  EXPECT_FALSE(MakeServerCredentials({.tls_cert_file = "x"}).ok());
}

}  // namespace
}  // namespace microgpt
