// Messages as grpcurl reads and writes them: the proto3 JSON mapping.
// Requests are parsed from -d text; responses print like grpcurl's default
// output: camelCase field names, enums by name, 64-bit integers as strings,
// fields at their default value left out, one field per line indented by two
// spaces.
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_MESSAGE_JSON_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_MESSAGE_JSON_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace microgpt::grpc_reflect {

// Parses one JSON object into `message` (field names in camelCase or as
// declared). INVALID_ARGUMENT on malformed JSON, an unknown field or a value
// of the wrong type.
absl::Status ParseJsonMessage(absl::string_view json,
                              google::protobuf::Message* message);

// The message as multi-line JSON, without a trailing newline. With
// emit_defaults, scalar fields at their default value are printed too.
std::string FormatJsonMessage(const google::protobuf::Message& message,
                              bool emit_defaults);

// Re-indents compact JSON: one member or element per line, two spaces per
// level, "key": value; empty objects and arrays stay "{}" and "[]".
std::string IndentJson(absl::string_view json);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_MESSAGE_JSON_H_
