#include "microgpt/client.h"

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/utf8.h"
#include "microgpt/v1/microgpt.grpc.pb.h"

namespace microgpt {
namespace {

// proto3 strings must be UTF-8. A server cannot parse a request with one
// that is not, and gRPC then answers UNIMPLEMENTED with no message; so such a
// request is refused here, naming the field and the byte.
absl::Status CheckUtf8(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const int count =
        field->is_repeated() ? reflection.FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      if (field->type() == FieldDescriptor::TYPE_STRING) {
        std::string scratch;
        const std::string& value =
            field->is_repeated()
                ? reflection.GetRepeatedStringReference(message, field, i,
                                                        &scratch)
                : reflection.GetStringReference(message, field, &scratch);
        if (const size_t bad = FindInvalidUtf8(value); bad != value.size()) {
          return absl::InvalidArgumentError(absl::StrCat(
              field->full_name(),
              field->is_repeated() ? absl::StrCat("[", i, "]") : "",
              " is not valid UTF-8 (byte ", bad + 1, ")"));
        }
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const absl::Status status =
            CheckUtf8(field->is_repeated()
                          ? reflection.GetRepeatedMessage(message, field, i)
                          : reflection.GetMessage(message, field));
        if (!status.ok()) return status;
      }
    }
  }
  return absl::OkStatus();
}

// The server a client talks to, for errors that should name it.
struct Peer {
  std::string address;
  const char* service;  // e.g. "microgpt.v1.Trainer"
  const char* role;     // e.g. "trainer"
};

// UNIMPLEMENTED with gRPC's empty message is what any gRPC server answers
// for a service it does not serve: a generator's address given as the
// trainer's, say. That error names the address, the method and the cause.
absl::Status ToAbsl(const grpc::Status& status, const Peer& peer,
                    absl::string_view method) {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kUnimplemented) {
    const std::string detail =
        status.error_message().empty()
            ? ""
            : absl::StrCat(" (", status.error_message(), ")");
    return absl::UnimplementedError(
        absl::StrCat(peer.address, " does not serve ", peer.service, "/",
                     method, detail, ": is it a microgpt ", peer.role, "?"));
  }
  return absl::Status(code, status.error_message());
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs_pem;
    ssl.pem_cert_chain = options.tls_client_cert_pem;
    ssl.pem_private_key = options.tls_client_key_pem;
    return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
  }
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

void Configure(grpc::ClientContext& context, const ClientOptions& options,
               std::chrono::milliseconds timeout) {
  if (timeout.count() > 0) {
    context.set_deadline(std::chrono::system_clock::now() + timeout);
  }
  context.set_wait_for_ready(options.wait_for_ready);
  if (!options.auth_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options.auth_token);
  }
}

// Reads a server stream to its end, handing each message to `callback`; a
// false from the callback cancels the call and counts as success.
template <typename Message, typename Callback>
absl::Status ReadStream(grpc::ClientContext& context,
                        grpc::ClientReader<Message>& reader,
                        const Callback& callback, const Peer& peer,
                        absl::string_view method) {
  Message message;
  bool stopped = false;
  while (reader.Read(&message)) {
    if (!callback(message)) {
      stopped = true;
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader.Finish();
  if (stopped) return absl::OkStatus();
  return ToAbsl(status, peer, method);
}

}  // namespace

std::vector<v1::GeneratedToken> TokensOf(const v1::GenerateResponse& message) {
  if (!message.tokens().empty()) {
    return {message.tokens().begin(), message.tokens().end()};
  }
  // An unpacked message without a token: a tokenless end (cancelled, time
  // limit, stop sequence, no match) or prompt_logprobs.
  if (message.id() < 0) return {};
  v1::GeneratedToken token;
  token.set_text(message.text());
  token.set_id(message.id());
  token.set_position(message.position());
  token.set_logprob(message.logprob());
  *token.mutable_top_logprobs() = message.top_logprobs();
  return {std::move(token)};
}

struct GeneratorClient::Impl {
  Peer peer;
  ClientOptions options;
  std::unique_ptr<v1::Generator::Stub> stub;
};

GeneratorClient::GeneratorClient(const std::string& address,
                                 ClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->peer = {address, v1::Generator::service_full_name(), "generator"};
  impl_->options = options;
  impl_->stub = v1::Generator::NewStub(MakeChannel(address, options));
}
GeneratorClient::~GeneratorClient() = default;
GeneratorClient::GeneratorClient(GeneratorClient&&) noexcept = default;
GeneratorClient& GeneratorClient::operator=(GeneratorClient&&) noexcept =
    default;

absl::Status GeneratorClient::Generate(const v1::GenerateRequest& request,
                                       const TokenCallback& on_token) {
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.stream_timeout);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      impl_->stub->Generate(&context, request);
  return ReadStream(context, *reader, on_token, impl_->peer, "Generate");
}

absl::StatusOr<v1::ListModelsResponse> GeneratorClient::ListModels() {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListModelsResponse response;
  const grpc::Status status =
      impl_->stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "ListModels");
  return response;
}

absl::StatusOr<v1::ScoreResponse> GeneratorClient::Score(
    const v1::ScoreRequest& request) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ScoreResponse response;
  const grpc::Status status = impl_->stub->Score(&context, request, &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "Score");
  return response;
}

struct TrainerClient::Impl {
  Peer peer;
  ClientOptions options;
  std::unique_ptr<v1::Trainer::Stub> stub;
};

TrainerClient::TrainerClient(const std::string& address, ClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->peer = {address, v1::Trainer::service_full_name(), "trainer"};
  impl_->options = options;
  impl_->stub = v1::Trainer::NewStub(MakeChannel(address, options));
}
TrainerClient::~TrainerClient() = default;
TrainerClient::TrainerClient(TrainerClient&&) noexcept = default;
TrainerClient& TrainerClient::operator=(TrainerClient&&) noexcept = default;

absl::StatusOr<std::string> TrainerClient::Start(
    const v1::StartTrainingRequest& request) {
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::StartTrainingResponse response;
  const grpc::Status status =
      impl_->stub->StartTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "StartTraining");
  return response.job_id();
}

absl::Status TrainerClient::Watch(absl::string_view job_id,
                                  const EventCallback& on_event) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.stream_timeout);
  v1::WatchTrainingRequest request;
  request.set_job_id(std::string(job_id));
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  std::unique_ptr<grpc::ClientReader<v1::TrainingEvent>> reader =
      impl_->stub->WatchTraining(&context, request);
  return ReadStream(context, *reader, on_event, impl_->peer, "WatchTraining");
}

absl::StatusOr<v1::TrainingJob> TrainerClient::Get(absl::string_view job_id) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::GetTrainingRequest request;
  request.set_job_id(std::string(job_id));
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  v1::TrainingJob response;
  const grpc::Status status =
      impl_->stub->GetTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "GetTraining");
  return response;
}

absl::StatusOr<std::vector<v1::TrainingJob>> TrainerClient::List() {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListTrainingsResponse response;
  const grpc::Status status = impl_->stub->ListTrainings(
      &context, v1::ListTrainingsRequest(), &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "ListTrainings");
  return std::vector<v1::TrainingJob>(response.jobs().begin(),
                                      response.jobs().end());
}

absl::StatusOr<v1::TrainingJob> TrainerClient::Cancel(
    absl::string_view job_id) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::CancelTrainingRequest request;
  request.set_job_id(std::string(job_id));
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  v1::TrainingJob response;
  const grpc::Status status =
      impl_->stub->CancelTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "CancelTraining");
  return response;
}

absl::StatusOr<std::vector<v1::CheckpointInfo>> TrainerClient::ListCheckpoints(
    absl::string_view model) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListCheckpointsRequest request;
  request.set_model(std::string(model));
  if (absl::Status status = CheckUtf8(request); !status.ok()) return status;
  v1::ListCheckpointsResponse response;
  const grpc::Status status =
      impl_->stub->ListCheckpoints(&context, request, &response);
  if (!status.ok()) return ToAbsl(status, impl_->peer, "ListCheckpoints");
  return std::vector<v1::CheckpointInfo>(response.checkpoints().begin(),
                                         response.checkpoints().end());
}

}  // namespace microgpt
