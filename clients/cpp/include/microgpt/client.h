// C++ clients of the microgpt services: thin wrappers over the generated gRPC
// stubs that take and return the microgpt.v1 messages and report errors as
// absl::Status (the codes are gRPC's; the message is the server's).
//
//   microgpt::GeneratorClient generator("localhost:50051");
//   microgpt::v1::GenerateRequest request;
//   request.set_prompt("em");
//   absl::Status status = generator.Generate(
//       request, [](const microgpt::v1::GenerateResponse& message) {
//         std::cout << message.text() << std::flush;
//         return true;  // false stops the generation
//       });
//
// With request.set_pack_tokens(true) a message may carry several tokens of a
// sample; microgpt::TokensOf(message) lists the tokens of either kind.
//
//   microgpt::TrainerClient trainer("localhost:50052");
//   absl::StatusOr<std::string> job_id = trainer.Start(start_request);
//   trainer.Watch(*job_id, [](const microgpt::v1::TrainingEvent& event) {
//     return true;
//   });
#ifndef MICROGPT_CLIENT_H_
#define MICROGPT_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "microgpt/v1/microgpt.pb.h"

namespace microgpt {

struct ClientOptions {
  // Deadline of each unary call (0: none).
  std::chrono::milliseconds timeout{30'000};
  // Deadline of each streaming call, Generate and Watch (0: none).
  std::chrono::milliseconds stream_timeout{0};
  // Wait for the server to come up instead of failing with UNAVAILABLE at
  // once (the deadline still applies).
  bool wait_for_ready = false;
  // Largest message accepted from, and sent to, the server.
  int max_message_bytes = 64 << 20;
  // Sent as "authorization: Bearer <auth_token>" on every call (empty: none).
  std::string auth_token;
  // TLS: verify the server against tls_root_certs_pem (PEM contents; empty:
  // the system roots). Otherwise plaintext.
  bool use_tls = false;
  std::string tls_root_certs_pem;
  // Client certificate and key (PEM contents) for servers that verify them.
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
};

// The tokens of one GenerateResponse, oldest first: a packed message's
// `tokens` (GenerateRequest.pack_tokens), or the singular token fields of an
// unpacked message as one GeneratedToken; none on a message without a token
// (id -1: an end such as CANCELLED or TIME_LIMIT, or prompt_logprobs). The
// sample's finish reason, model, version and usage stay on the message, the
// prompt's logprobs in its prompt_logprobs.
std::vector<v1::GeneratedToken> TokensOf(const v1::GenerateResponse& message);

// Client of microgpt.v1.Generator. Thread-safe; calls may run concurrently.
class GeneratorClient {
 public:
  // Called with each message, in order, on the calling thread: one token, or
  // with pack_tokens one or more tokens of a sample (see TokensOf). Returning
  // false stops the generation (Generate then returns OK).
  using TokenCallback = std::function<bool(const v1::GenerateResponse&)>;

  // `address` is host:port, e.g. "localhost:50051" (any gRPC target works).
  // Connects lazily; an unreachable server shows up as UNAVAILABLE on calls.
  explicit GeneratorClient(const std::string& address,
                           ClientOptions options = {});
  ~GeneratorClient();
  GeneratorClient(GeneratorClient&&) noexcept;
  GeneratorClient& operator=(GeneratorClient&&) noexcept;

  // Streams the messages of `request`'s samples to `on_token`.
  absl::Status Generate(const v1::GenerateRequest& request,
                        const TokenCallback& on_token);
  absl::StatusOr<v1::ListModelsResponse> ListModels();
  // The logprob of every token of each of request.texts (see ScoreRequest).
  absl::StatusOr<v1::ScoreResponse> Score(const v1::ScoreRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Client of microgpt.v1.Trainer. Thread-safe; calls may run concurrently.
class TrainerClient {
 public:
  // Called with each event of a watched job, on the calling thread. Returning
  // false stops watching (Watch then returns OK); the job goes on.
  using EventCallback = std::function<bool(const v1::TrainingEvent&)>;

  explicit TrainerClient(const std::string& address,
                         ClientOptions options = {});
  ~TrainerClient();
  TrainerClient(TrainerClient&&) noexcept;
  TrainerClient& operator=(TrainerClient&&) noexcept;

  // Starts a job; returns its id.
  absl::StatusOr<std::string> Start(const v1::StartTrainingRequest& request);
  // Streams the job's events until its `finished` event (the last) or until
  // `on_event` returns false.
  absl::Status Watch(absl::string_view job_id, const EventCallback& on_event);
  absl::StatusOr<v1::TrainingJob> Get(absl::string_view job_id);
  // Jobs since the server started, newest first.
  absl::StatusOr<std::vector<v1::TrainingJob>> List();
  // Stops a job after its current step; returns the job as it ended.
  absl::StatusOr<v1::TrainingJob> Cancel(absl::string_view job_id);
  // Published versions of `model`, or of every model when empty.
  absl::StatusOr<std::vector<v1::CheckpointInfo>> ListCheckpoints(
      absl::string_view model = "");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace microgpt

#endif  // MICROGPT_CLIENT_H_
