// grpc-reflect's command line: grpcurl's shape for the commands it supports.
//
//   grpc-reflect [flags] ADDRESS list [SERVICE]
//   grpc-reflect [flags] ADDRESS describe [SYMBOL]
//   grpc-reflect [flags] ADDRESS SERVICE/METHOD
//
// Flags follow Go's flag package, as grpcurl's do: -name or --name, a value
// as -name value or -name=value, a bool as -name or -name=false; they end at
// the first argument that is not a flag, or at "--".
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_COMMAND_LINE_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_COMMAND_LINE_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace microgpt::grpc_reflect {

// The usage text printed by -help and after a usage error.
extern const char kUsage[];

struct CommandLine {
  enum class Verb { kList, kDescribe, kInvoke };

  bool help = false;                // -help, -h
  bool plaintext = false;           // -plaintext: no TLS
  bool emit_defaults = false;       // -emit-defaults
  std::optional<std::string> data;  // -d: request JSON, "@" for stdin
  double max_time_seconds = 0;      // -max-time: 0 means no deadline
  // -H "name: value", repeatable; names lower-cased.
  std::vector<std::pair<std::string, std::string>> headers;

  std::string address;  // HOST:PORT (or any gRPC target)
  Verb verb = Verb::kInvoke;
  // list: the service (empty: every service); describe: the symbol (empty:
  // every service); invoke: SERVICE/METHOD.
  std::string symbol;
};

// Parses the arguments after the program name. INVALID_ARGUMENT with a
// message for the user on a usage error.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_COMMAND_LINE_H_
