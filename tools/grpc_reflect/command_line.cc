#include "tools/grpc_reflect/command_line.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace microgpt::grpc_reflect {

const char kUsage[] =
    R"(Usage:
  grpc-reflect [flags] ADDRESS list [SERVICE]
  grpc-reflect [flags] ADDRESS describe [SYMBOL]
  grpc-reflect [flags] ADDRESS SERVICE/METHOD

A grpcurl-compatible client that needs no .proto files: it learns every type
from the server's reflection service (grpc.reflection.v1alpha), and knows
grpc.health.v1 itself. Calls unary and server-streaming methods.

  list                List the services, or the methods of SERVICE.
  describe            Describe SYMBOL (service, method, message, enum...), or
                      every service.
  SERVICE/METHOD      Call the method (also SERVICE.METHOD) with the -d
                      request and print each response as JSON.

Flags:
  -plaintext          Use plain-text HTTP/2 (no TLS). Without it, TLS with
                      the system's root certificates.
  -d JSON             The request, in the proto3 JSON mapping; "@" reads it
                      from stdin. Default: {}.
  -max-time SECONDS   Deadline of the whole operation (fractions allowed).
  -H "NAME: VALUE"    Request metadata; repeatable.
  -emit-defaults      Print fields at their default value too.
  -help               Print this text.

Exit status: 0 on success, 1 when a call fails (the status is printed to
stderr as "ERROR:\n  Code: <Code>\n  Message: <message>"), 2 on a usage
error.
)";

namespace {

enum class FlagKind { kBool, kValue };

struct Flag {
  absl::string_view name;
  FlagKind kind;
};

constexpr Flag kFlags[] = {
    {"help", FlagKind::kBool},      {"h", FlagKind::kBool},
    {"plaintext", FlagKind::kBool}, {"emit-defaults", FlagKind::kBool},
    {"d", FlagKind::kValue},        {"max-time", FlagKind::kValue},
    {"H", FlagKind::kValue},
};

const Flag* FindFlag(absl::string_view name) {
  for (const Flag& flag : kFlags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// Go's strconv.ParseBool.
std::optional<bool> ParseGoBool(absl::string_view text) {
  if (text == "1" || text == "t" || text == "T" || text == "true" ||
      text == "TRUE" || text == "True") {
    return true;
  }
  if (text == "0" || text == "f" || text == "F" || text == "false" ||
      text == "FALSE" || text == "False") {
    return false;
  }
  return std::nullopt;
}

absl::Status SetFlag(absl::string_view name, absl::string_view value,
                     CommandLine& command_line) {
  if (name == "d") {
    command_line.data = std::string(value);
  } else if (name == "max-time") {
    double seconds = 0;
    if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid value \"", value, "\" for flag -max-time: parse error"));
    }
    if (seconds < 0) {
      return absl::InvalidArgumentError(
          "The -max-time argument must not be negative.");
    }
    command_line.max_time_seconds = seconds;
  } else if (name == "H") {
    // "name: value"; a header without a colon has an empty value.
    const size_t colon = value.find(':');
    absl::string_view header_name = value.substr(0, colon);
    absl::string_view header_value =
        colon == absl::string_view::npos ? "" : value.substr(colon + 1);
    command_line.headers.emplace_back(
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(header_name)),
        std::string(absl::StripAsciiWhitespace(header_value)));
  }
  return absl::OkStatus();
}

void SetBoolFlag(absl::string_view name, bool value,
                 CommandLine& command_line) {
  if (name == "help" || name == "h") {
    command_line.help = value;
  } else if (name == "plaintext") {
    command_line.plaintext = value;
  } else if (name == "emit-defaults") {
    command_line.emit_defaults = value;
  }
}

}  // namespace

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args) {
  CommandLine command_line;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') break;
    if (arg == "--") {
      ++i;
      break;
    }
    absl::string_view name = arg.substr(arg[1] == '-' ? 2 : 1);
    if (name.empty() || name[0] == '-' || name[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", arg));
    }
    std::optional<absl::string_view> value;
    if (const size_t equals = name.find('='); equals != name.npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag provided but not defined: -", name));
    }
    if (flag->kind == FlagKind::kBool) {
      std::optional<bool> on = value.has_value() ? ParseGoBool(*value) : true;
      if (!on.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid boolean value \"", *value, "\" for -", name,
                         ": parse error"));
      }
      SetBoolFlag(name, *on, command_line);
      continue;
    }
    if (!value.has_value()) {
      if (i + 1 == args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag needs an argument: -", name));
      }
      value = args[++i];
    }
    if (absl::Status status = SetFlag(name, *value, command_line);
        !status.ok()) {
      return status;
    }
  }
  if (command_line.help) return command_line;

  const std::vector<std::string> positional(args.begin() + i, args.end());
  if (positional.size() < 2) {
    return absl::InvalidArgumentError("Too few arguments.");
  }
  command_line.address = positional[0];
  const std::string& verb = positional[1];
  size_t max_args = 2;
  if (verb == "list" || verb == "describe") {
    command_line.verb = verb == "list" ? CommandLine::Verb::kList
                                       : CommandLine::Verb::kDescribe;
    if (positional.size() > 2) command_line.symbol = positional[2];
    max_args = 3;
  } else {
    command_line.verb = CommandLine::Verb::kInvoke;
    command_line.symbol = verb;
  }
  if (positional.size() > max_args) {
    return absl::InvalidArgumentError("Too many arguments.");
  }
  return command_line;
}

}  // namespace microgpt::grpc_reflect
