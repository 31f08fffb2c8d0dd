// ReflectionDescriptorDatabase: the file descriptors a server describes
// through grpc.reflection.v1alpha.ServerReflection, as a protobuf
// DescriptorDatabase. A DescriptorPool built over it fetches, on first use,
// the file that declares a symbol and then every file that one imports.
//
// Every lookup goes over one ServerReflectionInfo stream, opened by the first
// lookup; files the server sent are kept and answered locally afterwards, and
// symbols it does not know are not asked for twice.
//
//   ReflectionDescriptorDatabase database(channel, call_options);
//   google::protobuf::DescriptorPool pool(&database);
//   const auto* service = pool.FindServiceByName("microgpt.v1.Generator");
//
// Not thread-safe (neither is a DescriptorPool's use of its database).
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_REFLECTION_DATABASE_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_REFLECTION_DATABASE_H_

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tools/grpc_reflect/call_options.h"

namespace microgpt::grpc_reflect {

class ReflectionDescriptorDatabase
    : public google::protobuf::DescriptorDatabase {
 public:
  ReflectionDescriptorDatabase(std::shared_ptr<grpc::ChannelInterface> channel,
                               CallOptions options);
  // Half-closes the stream and waits for the server to end it.
  ~ReflectionDescriptorDatabase() override;

  // The fully-qualified names of the services the server registered, in the
  // server's order. The stream's status when it failed (UNIMPLEMENTED when
  // the server has no reflection service).
  absl::StatusOr<std::vector<std::string>> ListServices();

  // The status the stream ended with, once a lookup broke it (UNAVAILABLE,
  // DEADLINE_EXCEEDED, UNIMPLEMENTED...); OK while it works. A symbol the
  // server does not know leaves it OK.
  const grpc::Status& stream_status() const { return stream_status_; }

  // google::protobuf::DescriptorDatabase:
  bool FindFileByName(const std::string& filename,
                      google::protobuf::FileDescriptorProto* output) override;
  bool FindFileContainingSymbol(
      const std::string& symbol_name,
      google::protobuf::FileDescriptorProto* output) override;
  bool FindFileContainingExtension(
      const std::string& containing_type, int field_number,
      google::protobuf::FileDescriptorProto* output) override;

 private:
  using Request = grpc::reflection::v1alpha::ServerReflectionRequest;
  using Response = grpc::reflection::v1alpha::ServerReflectionResponse;

  // Sends one request and reads its response, opening the stream first if
  // needed. Fails with the stream's status once the stream is broken, or with
  // the server's error_response.
  absl::StatusOr<Response> Exchange(const Request& request);
  // Sends a request for files unless the server already answered `key` with
  // an error, and keeps the files it answers with. The name of the first (the
  // one asked for), or nullopt when the server answered with an error or the
  // stream broke.
  std::optional<std::string> Ask(const std::string& key,
                                 const Request& request);
  // Keeps every file of a response not already kept; the first file's name.
  std::string AddFiles(
      const grpc::reflection::v1alpha::FileDescriptorResponse& response);

  std::unique_ptr<grpc::reflection::v1alpha::ServerReflection::Stub> stub_;
  CallOptions options_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> stream_;
  grpc::Status stream_status_;
  bool stream_broken_ = false;
  google::protobuf::SimpleDescriptorDatabase files_;
  // Lookups the server answered with an error (NOT_FOUND), by Ask key.
  std::set<std::string> unknown_;
};

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_REFLECTION_DATABASE_H_
