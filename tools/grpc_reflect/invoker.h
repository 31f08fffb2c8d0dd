// InvokeMethod: calls a method known only by its descriptor, the way grpcurl
// does: the request is a message built at run time, sent as bytes through
// grpc::GenericStub, and each response is parsed into a message of the
// method's output type as it arrives.
//
//   grpc::Status status = InvokeMethod(channel, *method, *request, &factory,
//       options, [](const google::protobuf::Message& response) { ... });
#ifndef MICROGPT_TOOLS_GRPC_REFLECT_INVOKER_H_
#define MICROGPT_TOOLS_GRPC_REFLECT_INVOKER_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "tools/grpc_reflect/call_options.h"

namespace microgpt::grpc_reflect {

// Calls a unary or server-streaming `method` with `request` (a message of its
// input type) and hands every response, made by `factory`, to on_response
// before reading the next. Returns the call's status; UNIMPLEMENTED without
// calling for client- and bidi-streaming methods, INTERNAL (and the call
// cancelled) when a response does not parse as the output type.
grpc::Status InvokeMethod(
    std::shared_ptr<grpc::ChannelInterface> channel,
    const google::protobuf::MethodDescriptor& method,
    const google::protobuf::Message& request,
    google::protobuf::MessageFactory* factory, const CallOptions& options,
    const std::function<void(const google::protobuf::Message&)>& on_response);

}  // namespace microgpt::grpc_reflect

#endif  // MICROGPT_TOOLS_GRPC_REFLECT_INVOKER_H_
