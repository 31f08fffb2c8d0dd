// The text of grpcurl's `describe`: what kind of element a symbol names and
// its declaration in proto syntax.
//
//   microgpt.v1.Generator is a service:
//   service Generator {
//     rpc Generate(.microgpt.v1.GenerateRequest) returns (stream ...);
//     ...
//   }
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_DESCRIBE_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_DESCRIBE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/grpc_reflect/descriptor_source.h"

namespace microgpt::grpc_reflect {

// Describes a fully-qualified symbol: a service, method, message, enum,
// field, oneof, enum value or extension, or else a file name. NOT_FOUND (or
// the reflection stream's error) when the server knows no such symbol. The
// text ends with a newline.
absl::StatusOr<std::string> DescribeSymbol(DescriptorSource& source,
                                           absl::string_view symbol);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_DESCRIBE_H_
