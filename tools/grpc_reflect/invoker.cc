#include "tools/grpc_reflect/invoker.h"

#include <grpcpp/generic/generic_stub.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace microgpt::grpc_reflect {

namespace {

// A completion queue driven synchronously: start one operation, then Wait
// for it. Declared before the call that uses it, so it outlives the call.
class BlockingQueue {
 public:
  BlockingQueue() = default;
  BlockingQueue(const BlockingQueue&) = delete;
  BlockingQueue& operator=(const BlockingQueue&) = delete;
  ~BlockingQueue() {
    queue_.Shutdown();
    void* tag;
    bool ok;
    while (queue_.Next(&tag, &ok)) {
    }
  }

  grpc::CompletionQueue* get() { return &queue_; }
  void* tag() { return this; }

  // Waits for the operation in flight; whether it succeeded.
  bool Wait() {
    void* tag = nullptr;
    bool ok = false;
    return queue_.Next(&tag, &ok) && ok;
  }

 private:
  grpc::CompletionQueue queue_;
};

grpc::ByteBuffer Serialize(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return message->ParseFromString(bytes);
}

// Turns response bytes into messages for on_response; remembers the first
// that did not parse.
class ResponseHandler {
 public:
  ResponseHandler(
      const google::protobuf::Message* prototype,
      const std::function<void(const google::protobuf::Message&)>& on_response)
      : prototype_(prototype), on_response_(on_response) {}

  // False when the bytes are not a message of the output type.
  bool Handle(const grpc::ByteBuffer& buffer) {
    std::unique_ptr<google::protobuf::Message> message(prototype_->New());
    if (!Parse(buffer, message.get())) {
      error_ =
          grpc::Status(grpc::StatusCode::INTERNAL,
                       absl::StrCat("cannot parse a response as ",
                                    prototype_->GetDescriptor()->full_name()));
      return false;
    }
    on_response_(*message);
    return true;
  }

  // The call's status, unless a response failed to parse.
  grpc::Status Result(grpc::Status call_status) const {
    return error_.ok() ? std::move(call_status) : error_;
  }

 private:
  const google::protobuf::Message* prototype_;
  const std::function<void(const google::protobuf::Message&)>& on_response_;
  grpc::Status error_;
};

grpc::Status CallUnary(grpc::GenericStub& stub, grpc::ClientContext* context,
                       const std::string& path, const grpc::ByteBuffer& request,
                       ResponseHandler& handler) {
  BlockingQueue queue;
  auto call = stub.PrepareUnaryCall(context, path, request, queue.get());
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, queue.tag());
  queue.Wait();
  if (status.ok()) handler.Handle(response);
  return handler.Result(std::move(status));
}

grpc::Status CallServerStreaming(grpc::GenericStub& stub,
                                 grpc::ClientContext* context,
                                 const std::string& path,
                                 const grpc::ByteBuffer& request,
                                 ResponseHandler& handler) {
  BlockingQueue queue;
  auto call = stub.PrepareCall(context, path, queue.get());
  call->StartCall(queue.tag());
  if (queue.Wait()) {
    call->WriteLast(request, grpc::WriteOptions(), queue.tag());
    if (queue.Wait()) {
      grpc::ByteBuffer response;
      for (;;) {
        call->Read(&response, queue.tag());
        if (!queue.Wait()) break;
        if (!handler.Handle(response)) context->TryCancel();
      }
    }
  }
  // A failed start or write shows in the status.
  grpc::Status status;
  call->Finish(&status, queue.tag());
  queue.Wait();
  return handler.Result(std::move(status));
}

}  // namespace

grpc::Status InvokeMethod(
    std::shared_ptr<grpc::ChannelInterface> channel,
    const google::protobuf::MethodDescriptor& method,
    const google::protobuf::Message& request,
    google::protobuf::MessageFactory* factory, const CallOptions& options,
    const std::function<void(const google::protobuf::Message&)>& on_response) {
  if (method.client_streaming()) {
    return grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat(method.full_name(),
                     " is client- or bidi-streaming; grpc-reflect calls "
                     "only unary and server-streaming methods"));
  }
  const google::protobuf::Message* prototype =
      factory->GetPrototype(method.output_type());
  ResponseHandler handler(prototype, on_response);
  grpc::GenericStub stub(std::move(channel));
  grpc::ClientContext context;
  ApplyCallOptions(options, &context);
  const std::string path =
      absl::StrCat("/", method.service()->full_name(), "/", method.name());
  const grpc::ByteBuffer bytes = Serialize(request);
  return method.server_streaming()
             ? CallServerStreaming(stub, &context, path, bytes, handler)
             : CallUnary(stub, &context, path, bytes, handler);
}

}  // namespace microgpt::grpc_reflect
