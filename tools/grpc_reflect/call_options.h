// CallOptions: what every call grpc-reflect makes carries, the reflection
// stream as much as the method call: the -max-time deadline and the -H
// metadata.
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_CALL_OPTIONS_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_CALL_OPTIONS_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace microgpt::grpc_reflect {

struct CallOptions {
  // Deadline of every call; InfiniteFuture means none.
  absl::Time deadline = absl::InfiniteFuture();
  // Request metadata as (lower-case name, value) pairs.
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Sets the deadline and adds the metadata to a context about to start a call.
void ApplyCallOptions(const CallOptions& options, grpc::ClientContext* context);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_CALL_OPTIONS_H_
