#include "tools/grpc_reflect/call_options.h"

namespace microgpt::grpc_reflect {

void ApplyCallOptions(const CallOptions& options,
                      grpc::ClientContext* context) {
  if (options.deadline != absl::InfiniteFuture()) {
    context->set_deadline(absl::ToChronoTime(options.deadline));
  }
  for (const auto& [name, value] : options.metadata) {
    context->AddMetadata(name, value);
  }
}

}  // namespace microgpt::grpc_reflect
