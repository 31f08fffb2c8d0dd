#include "tools/grpc_reflect/message_json.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace microgpt::grpc_reflect {

absl::Status ParseJsonMessage(absl::string_view json,
                              google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message,
      options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(std::string(status.message()));
  }
  return absl::OkStatus();
}

std::string FormatJsonMessage(const google::protobuf::Message& message,
                              bool emit_defaults) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = emit_defaults;
  options.preserve_proto_field_names = false;
  std::string compact;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &compact, options);
  if (!status.ok()) {
    // Only a message the printer cannot resolve (an Any of an unknown type)
    // gets here; show what went wrong rather than nothing.
    return absl::StrCat("<cannot print ", message.GetTypeName(),
                        " as JSON: ", std::string(status.message()), ">");
  }
  return IndentJson(compact);
}

std::string IndentJson(absl::string_view json) {
  std::string out;
  out.reserve(json.size() * 2);
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  auto new_line = [&] {
    out.push_back('\n');
    out.append(2 * depth, ' ');
  };
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out.push_back(c);
        break;
      case '{':
      case '[': {
        const char close = c == '{' ? '}' : ']';
        const size_t next = json.find_first_not_of(" \t\r\n", i + 1);
        out.push_back(c);
        if (next != absl::string_view::npos && json[next] == close) {
          out.push_back(close);
          i = next;
        } else {
          ++depth;
          new_line();
        }
        break;
      }
      case '}':
      case ']':
        --depth;
        new_line();
        out.push_back(c);
        break;
      case ',':
        out.push_back(c);
        new_line();
        break;
      case ':':
        out.append(": ");
        break;
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace microgpt::grpc_reflect
