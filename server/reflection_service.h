// Server reflection, grpc.reflection.v1 and its predecessor v1alpha, both
// answered by the same code from the same descriptor pool (the generated
// pool: every .proto compiled into the binary, grpc/health/v1/health.proto
// included, which gRPC's default health service does not put there).
//
// Why not gRPC's own reflection plugin: Debian's gRPC 1.51 serves v1alpha
// only, and it sends descriptors without json_name, so grpcurl prints proto
// field names (sample_index) where buf curl and the proto3 JSON mapping print
// lowerCamelCase (sampleIndex). Here every FileDescriptorProto carries
// json_name, and a file comes with its transitive imports.
//
//   ReflectionServices reflection({"microgpt.v1.Generator",
//                                  "grpc.health.v1.Health"});
//   builder.RegisterService(reflection.v1());
//   builder.RegisterService(reflection.v1alpha());
#ifndef MICROGPT_SERVER_REFLECTION_SERVICE_H_
#define MICROGPT_SERVER_REFLECTION_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace microgpt {

// The answer to one reflection request, in the messages of one protocol
// version (v1 and v1alpha have the same messages in different packages).
template <typename Request, typename Response>
Response AnswerReflectionRequest(const Request& request,
                                 const std::vector<std::string>& services);

// One reflection protocol version as a sync gRPC service. Reflection streams
// are short and rare; the sync API keeps the request-response loop readable.
template <typename Service, typename Request, typename Response>
class ReflectionService final : public Service {
 public:
  explicit ReflectionService(std::vector<std::string> services)
      : services_(std::move(services)) {}

  grpc::Status ServerReflectionInfo(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<Response, Request>* stream) override {
    Request request;
    while (stream->Read(&request)) {
      if (!stream->Write(
              AnswerReflectionRequest<Request, Response>(request, services_))) {
        break;
      }
    }
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::string> services_;
};

using ReflectionV1 =
    ReflectionService<grpc::reflection::v1::ServerReflection::Service,
                      grpc::reflection::v1::ServerReflectionRequest,
                      grpc::reflection::v1::ServerReflectionResponse>;
using ReflectionV1Alpha =
    ReflectionService<grpc::reflection::v1alpha::ServerReflection::Service,
                      grpc::reflection::v1alpha::ServerReflectionRequest,
                      grpc::reflection::v1alpha::ServerReflectionResponse>;

// Both versions over one list of services: the ones given, plus the two
// reflection services themselves.
class ReflectionServices {
 public:
  explicit ReflectionServices(std::vector<std::string> services);

  // NOT_FOUND naming the first listed service whose descriptor is not in the
  // generated pool (a .proto not linked into the binary): reflection would
  // list a service that no client can resolve.
  absl::Status CheckDescriptors() const;

  grpc::Service* v1() { return &v1_; }
  grpc::Service* v1alpha() { return &v1alpha_; }

 private:
  std::vector<std::string> services_;
  ReflectionV1 v1_;
  ReflectionV1Alpha v1alpha_;
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_REFLECTION_SERVICE_H_
