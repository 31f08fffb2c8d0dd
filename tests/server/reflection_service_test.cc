// Server reflection and health as ServerRunner serves them, asked over a real
// channel with the generated stubs of gRPC's own protos: both reflection
// versions list the same services, every listed service resolves (health
// included), descriptors carry json_name, and Health/Check answers.
#include "server/reflection_service.h"

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "microgpt/v1/microgpt.grpc.pb.h"
#include "server/server_runner.h"

namespace microgpt {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// Registered only for its name: reflection and health never call into it.
class UnusedGenerator final : public v1::Generator::CallbackService {};

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    runner_ = std::make_unique<ServerRunner>(options);
    runner_->AddService(&generator_, v1::Generator::service_full_name());
    ASSERT_TRUE(runner_->Start("test").ok());
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", runner_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  // One request and its answer on a reflection stream of version `Proto`.
  template <typename Proto>
  typename Proto::ServerReflectionResponse Ask(
      const typename Proto::ServerReflectionRequest& request) {
    auto stub = Proto::ServerReflection::NewStub(channel_);
    grpc::ClientContext context;
    auto stream = stub->ServerReflectionInfo(&context);
    typename Proto::ServerReflectionResponse response;
    EXPECT_TRUE(stream->Write(request));
    EXPECT_TRUE(stream->Read(&response));
    stream->WritesDone();
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  template <typename Proto>
  std::vector<std::string> ListServices() {
    typename Proto::ServerReflectionRequest request;
    request.set_list_services("");
    const auto response = Ask<Proto>(request);
    std::vector<std::string> names;
    for (const auto& service : response.list_services_response().service()) {
      names.push_back(service.name());
    }
    return names;
  }

  // The files sent for `symbol`, parsed.
  template <typename Proto>
  std::vector<google::protobuf::FileDescriptorProto> FilesContaining(
      const std::string& symbol) {
    typename Proto::ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    const auto response = Ask<Proto>(request);
    EXPECT_FALSE(response.has_error_response())
        << response.error_response().error_message();
    std::vector<google::protobuf::FileDescriptorProto> files;
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      files.emplace_back();
      EXPECT_TRUE(files.back().ParseFromString(bytes));
    }
    return files;
  }

  UnusedGenerator generator_;
  std::unique_ptr<ServerRunner> runner_;
  std::shared_ptr<grpc::Channel> channel_;
};

struct V1 {
  using ServerReflection = grpc::reflection::v1::ServerReflection;
  using ServerReflectionRequest = grpc::reflection::v1::ServerReflectionRequest;
  using ServerReflectionResponse =
      grpc::reflection::v1::ServerReflectionResponse;
};
struct V1Alpha {
  using ServerReflection = grpc::reflection::v1alpha::ServerReflection;
  using ServerReflectionRequest =
      grpc::reflection::v1alpha::ServerReflectionRequest;
  using ServerReflectionResponse =
      grpc::reflection::v1alpha::ServerReflectionResponse;
};

TEST_F(ReflectionTest, BothVersionsListTheSameServices) {
  const std::vector<std::string> v1 = ListServices<V1>();
  EXPECT_THAT(
      v1, UnorderedElementsAre("microgpt.v1.Generator", "grpc.health.v1.Health",
                               "grpc.reflection.v1.ServerReflection",
                               "grpc.reflection.v1alpha.ServerReflection"));
  EXPECT_EQ(ListServices<V1Alpha>(), v1);
}

TEST_F(ReflectionTest, EveryListedServiceResolvesHealthIncluded) {
  for (const std::string& name : ListServices<V1>()) {
    const auto files = FilesContaining<V1>(name);
    ASSERT_FALSE(files.empty()) << name;
    bool found = false;
    for (const auto& service : files.front().service()) {
      found |=
          absl::StrCat(files.front().package(), ".", service.name()) == name;
    }
    EXPECT_TRUE(found) << name << " not in " << files.front().name();
  }
  const auto health = FilesContaining<V1Alpha>("grpc.health.v1.Health");
  ASSERT_EQ(health.size(), 1u);
  EXPECT_EQ(health[0].name(), "grpc/health/v1/health.proto");
}

TEST_F(ReflectionTest, DescriptorsCarryJsonNames) {
  for (const auto& files :
       {FilesContaining<V1>("microgpt.v1.GenerateResponse"),
        FilesContaining<V1Alpha>("microgpt.v1.Generator")}) {
    ASSERT_EQ(files.size(), 1u);
    std::string sample_index_json;
    int fields = 0;
    for (const auto& message : files[0].message_type()) {
      for (const auto& field : message.field()) {
        ++fields;
        EXPECT_TRUE(field.has_json_name())
            << message.name() << "." << field.name();
        if (message.name() == "GenerateResponse" &&
            field.name() == "sample_index") {
          sample_index_json = field.json_name();
        }
      }
    }
    EXPECT_GT(fields, 50);
    EXPECT_EQ(sample_index_json, "sampleIndex");
  }
}

TEST_F(ReflectionTest, FileByFilenameAnswersWithTheFileAndTheRequest) {
  V1::ServerReflectionRequest request;
  request.set_file_by_filename("microgpt/v1/microgpt.proto");
  const auto response = Ask<V1>(request);
  ASSERT_EQ(response.file_descriptor_response().file_descriptor_proto_size(),
            1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(
      response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.package(), "microgpt.v1");
  EXPECT_EQ(response.original_request().file_by_filename(),
            "microgpt/v1/microgpt.proto");
}

TEST_F(ReflectionTest, UnknownNamesAreNotFoundOnAStreamThatGoesOn) {
  auto stub = V1::ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  V1::ServerReflectionRequest request;
  V1::ServerReflectionResponse response;
  request.set_file_containing_symbol("microgpt.v1.NoSuchMessage");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(response.error_response().error_message(),
              HasSubstr("microgpt.v1.NoSuchMessage"));
  request.set_file_by_filename("no/such.proto");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.list_services_response().service_size(), 4);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ReflectionTest, HealthCheckAnswersForTheServerAndEachService) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  const auto check = [&](const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = health->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  runner_->SetServing(true);
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("microgpt.v1.Generator"),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(ReflectionServicesTest, AServiceWithoutADescriptorIsAnError) {
  ReflectionServices reflection({"microgpt.v1.Generator", "no.such.Service"});
  const absl::Status status = reflection.CheckDescriptors();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("no.such.Service"));
}

}  // namespace
}  // namespace microgpt
