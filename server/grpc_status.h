// The one place an absl::Status becomes a grpc::Status: at the RPC edge.
// The canonical codes are the same numbers in both.
#ifndef MICROGPT_SERVER_GRPC_STATUS_H_
#define MICROGPT_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace microgpt {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

inline absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace microgpt

#endif  // MICROGPT_SERVER_GRPC_STATUS_H_
