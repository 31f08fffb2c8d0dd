// grpc-reflect: a grpcurl-compatible client that needs no .proto files. It
// lists, describes and calls a server's methods with the types its reflection
// service describes (see command_line.h for the commands).
//
//   grpc-reflect -plaintext localhost:50051 list
//   grpc-reflect -plaintext -d '{"prompt":"em"}' localhost:50051
//       microgpt.v1.Generator/Generate   (one command)
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tools/grpc_reflect/call_options.h"
#include "tools/grpc_reflect/command_line.h"
#include "tools/grpc_reflect/describe.h"
#include "tools/grpc_reflect/descriptor_source.h"
#include "tools/grpc_reflect/invoker.h"
#include "tools/grpc_reflect/message_json.h"
#include "tools/grpc_reflect/status_text.h"

namespace microgpt::grpc_reflect {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints "<context>: <error>" to stderr, the way grpcurl reports a failure
// that is not the called method's own status; returns kExitFailure. Errors
// with other codes than NOT_FOUND and INVALID_ARGUMENT come from the
// reflection stream.
int Fail(absl::string_view context, const absl::Status& status) {
  std::string error(status.message());
  if (status.code() == absl::StatusCode::kUnimplemented) {
    error = "server does not support the reflection API";
  } else if (status.code() != absl::StatusCode::kNotFound &&
             status.code() != absl::StatusCode::kInvalidArgument) {
    error = FormatRpcError(static_cast<int>(status.code()), status.message());
  }
  std::cerr << context << ": " << error << "\n";
  return kExitFailure;
}

int List(DescriptorSource& source, const std::string& service_name) {
  if (service_name.empty()) {
    absl::StatusOr<std::vector<std::string>> services = source.ListServices();
    if (!services.ok()) {
      return Fail("Failed to list services", services.status());
    }
    for (const std::string& name : *services) std::cout << name << "\n";
    return 0;
  }
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> service =
      source.FindService(service_name);
  if (!service.ok()) {
    return Fail(absl::StrCat("Failed to list methods for service \"",
                             service_name, "\""),
                service.status());
  }
  std::vector<std::string> methods;
  for (int i = 0; i < (*service)->method_count(); ++i) {
    methods.push_back((*service)->method(i)->full_name());
  }
  std::sort(methods.begin(), methods.end());
  for (const std::string& name : methods) std::cout << name << "\n";
  return 0;
}

int Describe(DescriptorSource& source, const std::string& symbol) {
  std::vector<std::string> symbols = {symbol};
  if (symbol.empty()) {
    absl::StatusOr<std::vector<std::string>> services = source.ListServices();
    if (!services.ok()) {
      return Fail("Failed to list services", services.status());
    }
    symbols = *services;
  }
  for (const std::string& name : symbols) {
    absl::StatusOr<std::string> text = DescribeSymbol(source, name);
    if (!text.ok()) {
      return Fail(absl::StrCat("Failed to resolve symbol \"", name, "\""),
                  text.status());
    }
    std::cout << *text;
  }
  return 0;
}

int Invoke(DescriptorSource& source,
           std::shared_ptr<grpc::ChannelInterface> channel,
           const CommandLine& command_line, const CallOptions& options) {
  const std::string context =
      absl::StrCat("Error invoking method \"", command_line.symbol, "\"");
  absl::StatusOr<const google::protobuf::MethodDescriptor*> method =
      source.FindMethod(command_line.symbol);
  if (!method.ok()) return Fail(context, method.status());

  std::string json = command_line.data.value_or("{}");
  if (json == "@") {
    json.assign(std::istreambuf_iterator<char>(std::cin),
                std::istreambuf_iterator<char>());
  }
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype((*method)->input_type())->New());
  if (absl::Status status = ParseJsonMessage(json, request.get());
      !status.ok()) {
    return Fail(absl::StrCat(context, ": error getting request data"), status);
  }

  grpc::Status status = InvokeMethod(
      std::move(channel), **method, *request, &factory, options,
      [&](const google::protobuf::Message& response) {
        std::cout << FormatJsonMessage(response, command_line.emit_defaults)
                  << std::endl;
      });
  if (!status.ok()) {
    std::cerr << FormatCallError(status.error_code(), status.error_message());
    return kExitFailure;
  }
  return 0;
}

int Run(const std::vector<std::string>& args) {
  absl::StatusOr<CommandLine> command_line = ParseCommandLine(args);
  if (!command_line.ok()) {
    std::cerr << command_line.status().message() << "\n\n" << kUsage;
    return kExitUsage;
  }
  if (command_line->help) {
    std::cout << kUsage;
    return 0;
  }

  CallOptions options;
  if (command_line->max_time_seconds > 0) {
    options.deadline =
        absl::Now() + absl::Seconds(command_line->max_time_seconds);
  }
  options.metadata = command_line->headers;
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      command_line->address,
      command_line->plaintext
          ? grpc::InsecureChannelCredentials()
          : grpc::SslCredentials(grpc::SslCredentialsOptions()));
  DescriptorSource source(channel, options);

  switch (command_line->verb) {
    case CommandLine::Verb::kList:
      return List(source, command_line->symbol);
    case CommandLine::Verb::kDescribe:
      return Describe(source, command_line->symbol);
    case CommandLine::Verb::kInvoke:
      return Invoke(source, channel, *command_line, options);
  }
  return kExitUsage;
}

}  // namespace
}  // namespace microgpt::grpc_reflect

int main(int argc, char** argv) {
  return microgpt::grpc_reflect::Run(
      std::vector<std::string>(argv + 1, argv + argc));
}
