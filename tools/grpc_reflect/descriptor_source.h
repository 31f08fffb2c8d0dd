// DescriptorSource: a server's API as grpcurl sees it without proto files.
// Types come from the server's reflection service
// (ReflectionDescriptorDatabase) and, for a symbol reflection does not know,
// from the descriptors compiled into this tool: grpc.health.v1 (the default
// health service is served but reflection never lists it) and protobuf's
// well-known types.
//
//   DescriptorSource source(channel, call_options);
//   absl::StatusOr<const google::protobuf::MethodDescriptor*> method =
//       source.FindMethod("microgpt.v1.Generator/Generate");
//
// Descriptors it returns live as long as the source. Not thread-safe.
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_DESCRIPTOR_SOURCE_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_DESCRIPTOR_SOURCE_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/grpc_reflect/call_options.h"
#include "tools/grpc_reflect/reflection_database.h"

namespace microgpt::grpc_reflect {

class DescriptorSource {
 public:
  DescriptorSource(std::shared_ptr<grpc::ChannelInterface> channel,
                   CallOptions options);

  DescriptorSource(const DescriptorSource&) = delete;
  DescriptorSource& operator=(const DescriptorSource&) = delete;

  // The services reflection lists, sorted.
  absl::StatusOr<std::vector<std::string>> ListServices();

  // A service by fully-qualified name ("microgpt.v1.Generator"; a leading
  // "." is allowed).
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> FindService(
      absl::string_view name);

  // A method named "package.Service/Method" or "package.Service.Method".
  absl::StatusOr<const google::protobuf::MethodDescriptor*> FindMethod(
      absl::string_view name);

  // The pool every descriptor comes from; its Find*ByName methods fetch what
  // they need.
  const google::protobuf::DescriptorPool& pool() const { return pool_; }

  // The error for a symbol the pool could not find: the reflection stream's
  // status when it broke (the server is unreachable, has no reflection...),
  // else NOT_FOUND with `message`.
  absl::Status NotFoundError(absl::string_view message) const;

 private:
  ReflectionDescriptorDatabase reflection_;
  google::protobuf::DescriptorPoolDatabase builtin_;
  google::protobuf::MergedDescriptorDatabase merged_;
  google::protobuf::DescriptorPool pool_;
};

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_DESCRIPTOR_SOURCE_H_
