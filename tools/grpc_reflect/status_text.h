// How grpcurl words a gRPC status: grpc-go's code names and error strings.
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_STATUS_TEXT_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_STATUS_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace microgpt::grpc_reflect {

// grpc-go's name of a status code: "InvalidArgument", "Unavailable",
// "Code(42)" for a number outside the standard codes.
std::string StatusCodeName(int code);

// A failed call as grpcurl reports it on stderr:
//   ERROR:
//     Code: InvalidArgument
//     Message: temperature must be >= 0
std::string FormatCallError(int code, absl::string_view message);

// grpc-go's error string: "rpc error: code = Unavailable desc = ...".
std::string FormatRpcError(int code, absl::string_view message);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_STATUS_TEXT_H_
