#include "tools/grpc_reflect/descriptor_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc/health/v1/health.pb.h"

namespace microgpt::grpc_reflect {

namespace {

// The descriptors linked into this binary. Naming a health message keeps the
// linker from dropping health.proto's generated code, which is what
// registers it in the generated pool.
const google::protobuf::DescriptorPool& BuiltinPool() {
  grpc::health::v1::HealthCheckRequest::descriptor();
  return *google::protobuf::DescriptorPool::generated_pool();
}

}  // namespace

DescriptorSource::DescriptorSource(
    std::shared_ptr<grpc::ChannelInterface> channel, CallOptions options)
    : reflection_(std::move(channel), std::move(options)),
      builtin_(BuiltinPool()),
      merged_(&reflection_, &builtin_),
      pool_(&merged_) {}

absl::StatusOr<std::vector<std::string>> DescriptorSource::ListServices() {
  absl::StatusOr<std::vector<std::string>> names = reflection_.ListServices();
  if (names.ok()) std::sort(names->begin(), names->end());
  return names;
}

absl::StatusOr<const google::protobuf::ServiceDescriptor*>
DescriptorSource::FindService(absl::string_view name) {
  name = absl::StripPrefix(name, ".");
  const google::protobuf::ServiceDescriptor* service =
      pool_.FindServiceByName(std::string(name));
  if (service == nullptr) {
    return NotFoundError(
        absl::StrCat("target server does not expose service \"", name, "\""));
  }
  return service;
}

absl::StatusOr<const google::protobuf::MethodDescriptor*>
DescriptorSource::FindMethod(absl::string_view name) {
  size_t split = name.rfind('/');
  if (split == absl::string_view::npos) split = name.rfind('.');
  if (split == absl::string_view::npos || split == 0 ||
      split + 1 == name.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("given method name \"", name,
                     "\" is not in expected format: 'service/method' or "
                     "'service.method'"));
  }
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> service =
      FindService(name.substr(0, split));
  if (!service.ok()) return service.status();
  absl::string_view method_name = name.substr(split + 1);
  const google::protobuf::MethodDescriptor* method =
      (*service)->FindMethodByName(std::string(method_name));
  if (method == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "service \"", (*service)->full_name(),
        "\" does not include a method named \"", method_name, "\""));
  }
  return method;
}

absl::Status DescriptorSource::NotFoundError(absl::string_view message) const {
  const grpc::Status& stream = reflection_.stream_status();
  if (!stream.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(stream.error_code()),
                        stream.error_message());
  }
  return absl::NotFoundError(message);
}

}  // namespace microgpt::grpc_reflect
