#include "tools/grpc_reflect/status_text.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace microgpt::grpc_reflect {

std::string StatusCodeName(int code) {
  // Indexed by code, as grpc-go's codes.Code.String() spells them.
  static constexpr std::array<absl::string_view, 17> kNames = {
      "OK",
      "Canceled",
      "Unknown",
      "InvalidArgument",
      "DeadlineExceeded",
      "NotFound",
      "AlreadyExists",
      "PermissionDenied",
      "ResourceExhausted",
      "FailedPrecondition",
      "Aborted",
      "OutOfRange",
      "Unimplemented",
      "Internal",
      "Unavailable",
      "DataLoss",
      "Unauthenticated",
  };
  if (code < 0 || code >= static_cast<int>(kNames.size())) {
    return absl::StrCat("Code(", code, ")");
  }
  return std::string(kNames[code]);
}

std::string FormatCallError(int code, absl::string_view message) {
  return absl::StrCat("ERROR:\n  Code: ", StatusCodeName(code),
                      "\n  Message: ", message, "\n");
}

std::string FormatRpcError(int code, absl::string_view message) {
  return absl::StrCat("rpc error: code = ", StatusCodeName(code),
                      " desc = ", message);
}

}  // namespace microgpt::grpc_reflect
