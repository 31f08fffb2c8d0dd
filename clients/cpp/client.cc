#include "microgpt/client.h"

#include <grpcpp/grpcpp.h>

#include <utility>
#include <vector>

#include "microgpt/v1/microgpt.grpc.pb.h"

namespace microgpt {
namespace {

absl::Status ToAbsl(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
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
                        const Callback& callback) {
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
  return ToAbsl(status);
}

}  // namespace

std::vector<v1::GeneratedToken> TokensOf(const v1::GenerateResponse& message) {
  if (!message.tokens().empty()) {
    return {message.tokens().begin(), message.tokens().end()};
  }
  if (message.finish_reason() == v1::FINISH_REASON_CANCELLED) return {};
  v1::GeneratedToken token;
  token.set_text(message.text());
  token.set_id(message.id());
  token.set_position(message.position());
  token.set_logprob(message.logprob());
  *token.mutable_top_logprobs() = message.top_logprobs();
  return {std::move(token)};
}

struct GeneratorClient::Impl {
  ClientOptions options;
  std::unique_ptr<v1::Generator::Stub> stub;
};

GeneratorClient::GeneratorClient(const std::string& address,
                                 ClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->stub = v1::Generator::NewStub(MakeChannel(address, options));
}
GeneratorClient::~GeneratorClient() = default;
GeneratorClient::GeneratorClient(GeneratorClient&&) noexcept = default;
GeneratorClient& GeneratorClient::operator=(GeneratorClient&&) noexcept =
    default;

absl::Status GeneratorClient::Generate(const v1::GenerateRequest& request,
                                       const TokenCallback& on_token) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.stream_timeout);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      impl_->stub->Generate(&context, request);
  return ReadStream(context, *reader, on_token);
}

absl::StatusOr<v1::ListModelsResponse> GeneratorClient::ListModels() {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListModelsResponse response;
  const grpc::Status status =
      impl_->stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return ToAbsl(status);
  return response;
}

struct TrainerClient::Impl {
  ClientOptions options;
  std::unique_ptr<v1::Trainer::Stub> stub;
};

TrainerClient::TrainerClient(const std::string& address, ClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->stub = v1::Trainer::NewStub(MakeChannel(address, options));
}
TrainerClient::~TrainerClient() = default;
TrainerClient::TrainerClient(TrainerClient&&) noexcept = default;
TrainerClient& TrainerClient::operator=(TrainerClient&&) noexcept = default;

absl::StatusOr<std::string> TrainerClient::Start(
    const v1::StartTrainingRequest& request) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::StartTrainingResponse response;
  const grpc::Status status =
      impl_->stub->StartTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status);
  return response.job_id();
}

absl::Status TrainerClient::Watch(absl::string_view job_id,
                                  const EventCallback& on_event) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.stream_timeout);
  v1::WatchTrainingRequest request;
  request.set_job_id(std::string(job_id));
  std::unique_ptr<grpc::ClientReader<v1::TrainingEvent>> reader =
      impl_->stub->WatchTraining(&context, request);
  return ReadStream(context, *reader, on_event);
}

absl::StatusOr<v1::TrainingJob> TrainerClient::Get(absl::string_view job_id) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::GetTrainingRequest request;
  request.set_job_id(std::string(job_id));
  v1::TrainingJob response;
  const grpc::Status status =
      impl_->stub->GetTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status);
  return response;
}

absl::StatusOr<std::vector<v1::TrainingJob>> TrainerClient::List() {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListTrainingsResponse response;
  const grpc::Status status = impl_->stub->ListTrainings(
      &context, v1::ListTrainingsRequest(), &response);
  if (!status.ok()) return ToAbsl(status);
  return std::vector<v1::TrainingJob>(response.jobs().begin(),
                                      response.jobs().end());
}

absl::StatusOr<v1::TrainingJob> TrainerClient::Cancel(
    absl::string_view job_id) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::CancelTrainingRequest request;
  request.set_job_id(std::string(job_id));
  v1::TrainingJob response;
  const grpc::Status status =
      impl_->stub->CancelTraining(&context, request, &response);
  if (!status.ok()) return ToAbsl(status);
  return response;
}

absl::StatusOr<std::vector<v1::CheckpointInfo>> TrainerClient::ListCheckpoints(
    absl::string_view model) {
  grpc::ClientContext context;
  Configure(context, impl_->options, impl_->options.timeout);
  v1::ListCheckpointsRequest request;
  request.set_model(std::string(model));
  v1::ListCheckpointsResponse response;
  const grpc::Status status =
      impl_->stub->ListCheckpoints(&context, request, &response);
  if (!status.ok()) return ToAbsl(status);
  return std::vector<v1::CheckpointInfo>(response.checkpoints().begin(),
                                         response.checkpoints().end());
}

}  // namespace microgpt
