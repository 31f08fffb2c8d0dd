#include "tools/grpc_reflect/describe.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace microgpt::grpc_reflect {

namespace {

// "<name> is <kind>:\n<declaration>\n", kind with its article.
std::string Describe(absl::string_view name, absl::string_view kind,
                     const std::string& declaration) {
  return absl::StrCat(name, " is ", kind, ":\n",
                      absl::StripTrailingAsciiWhitespace(declaration), "\n");
}

}  // namespace

absl::StatusOr<std::string> DescribeSymbol(DescriptorSource& source,
                                           absl::string_view symbol) {
  const std::string name(absl::StripPrefix(symbol, "."));
  const google::protobuf::DescriptorPool& pool = source.pool();
  if (const auto* service = pool.FindServiceByName(name)) {
    return Describe(name, "a service", service->DebugString());
  }
  if (const auto* message = pool.FindMessageTypeByName(name)) {
    return Describe(name, "a message", message->DebugString());
  }
  if (const auto* enum_type = pool.FindEnumTypeByName(name)) {
    return Describe(name, "an enum", enum_type->DebugString());
  }
  if (const auto* method = pool.FindMethodByName(name)) {
    return Describe(name, "a method", method->DebugString());
  }
  if (const auto* extension = pool.FindExtensionByName(name)) {
    return Describe(name, "an extension", extension->DebugString());
  }
  if (const auto* field = pool.FindFieldByName(name)) {
    return Describe(name, "a field", field->DebugString());
  }
  if (const auto* oneof = pool.FindOneofByName(name)) {
    return Describe(name, "a one-of", oneof->DebugString());
  }
  if (const auto* value = pool.FindEnumValueByName(name)) {
    return Describe(name, "an enum value", value->DebugString());
  }
  if (const auto* file = pool.FindFileByName(name)) {
    return Describe(name, "a file", file->DebugString());
  }
  return source.NotFoundError(absl::StrCat("Symbol not found: ", name));
}

}  // namespace microgpt::grpc_reflect
