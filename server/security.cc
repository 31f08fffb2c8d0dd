#include "server/security.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace microgpt {
namespace {

constexpr absl::string_view kBearerPrefix = "Bearer ";

absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the ", what, " file ", path));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::string_view SliceView(const grpc_slice& slice) {
  return absl::string_view(
      reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
      GRPC_SLICE_LENGTH(slice));
}

// The auth metadata processor, called by gRPC core with the initial metadata
// of every call on the port (":path" included) before the call is handed to
// any service. Non-blocking: answers synchronously.
void ProcessAuthMetadata(void* state, grpc_auth_context* /*context*/,
                         const grpc_metadata* md, size_t num_md,
                         grpc_process_auth_metadata_done_cb done,
                         void* user_data) {
  const std::string& token = *static_cast<const std::string*>(state);
  absl::string_view path;
  const grpc_metadata* authorization = nullptr;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = SliceView(md[i].key);
    if (key == ":path") path = SliceView(md[i].value);
    if (key == "authorization") authorization = &md[i];
  }
  if (IsOpenMethod(path)) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  if (authorization != nullptr) {
    const absl::string_view value = SliceView(authorization->value);
    // The prefix is public; only the token part must not leak by timing.
    if (absl::StartsWith(value, kBearerPrefix) &&
        ConstantTimeEquals(value.substr(kBearerPrefix.size()), token)) {
      // Consumed: handlers never see the token.
      done(user_data, authorization, 1, nullptr, 0, GRPC_STATUS_OK, nullptr);
      return;
    }
  }
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
       authorization == nullptr
           ? "missing \"authorization: Bearer <token>\" metadata"
           : "invalid bearer token");
}

void DestroyAuthState(void* state) { delete static_cast<std::string*>(state); }

// ServerCredentials whose port gets the token check above, over plaintext or
// TLS. (grpc::InsecureServerCredentials() refuses an auth metadata processor;
// gRPC core accepts one on insecure credentials too.)
class MicrogptServerCredentials final : public grpc::ServerCredentials {
 public:
  MicrogptServerCredentials(std::string token, std::string cert_pem,
                            std::string key_pem, std::string client_ca_pem)
      : token_(std::move(token)),
        cert_pem_(std::move(cert_pem)),
        key_pem_(std::move(key_pem)),
        client_ca_pem_(std::move(client_ca_pem)) {}

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    std::abort();  // not supported: the token check is built in
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds = nullptr;
    if (cert_pem_.empty()) {
      creds = grpc_insecure_server_credentials_create();
    } else {
      grpc_ssl_pem_key_cert_pair pair = {key_pem_.c_str(), cert_pem_.c_str()};
      creds = grpc_ssl_server_credentials_create_ex(
          client_ca_pem_.empty() ? nullptr : client_ca_pem_.c_str(), &pair, 1,
          client_ca_pem_.empty()
              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
          nullptr);
    }
    if (creds == nullptr) return 0;
    if (!token_.empty()) {
      grpc_auth_metadata_processor processor;
      processor.process = ProcessAuthMetadata;
      processor.destroy = DestroyAuthState;
      processor.state = new std::string(token_);
      grpc_server_credentials_set_auth_metadata_processor(creds, processor);
    }
    const int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  const std::string token_;
  const std::string cert_pem_;
  const std::string key_pem_;
  const std::string client_ca_pem_;
};

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Every byte of `a` is compared whatever the sizes, so the time depends on
  // a.size() only (the presented token), never on the secret's contents.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char other =
        b.empty() ? 0 : static_cast<unsigned char>(b[i % b.size()]);
    diff = diff | (static_cast<unsigned char>(a[i]) ^ other);
  }
  return diff == 0;
}

bool IsOpenMethod(absl::string_view method) {
  return absl::StartsWith(method, "/grpc.health.v1.Health/") ||
         absl::StartsWith(method,
                          "/grpc.reflection.v1alpha.ServerReflection/") ||
         absl::StartsWith(method, "/grpc.reflection.v1.ServerReflection/");
}

absl::StatusOr<std::string> ReadAuthToken(absl::string_view token_file) {
  std::string token;
  std::string source;
  if (!token_file.empty()) {
    source = std::string(token_file);
    absl::StatusOr<std::string> contents = ReadWholeFile(source, "auth token");
    if (!contents.ok()) return contents.status();
    token = std::string(absl::StripAsciiWhitespace(*contents));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the auth token file ", source, " is empty"));
    }
  } else if (const char* env = std::getenv(kAuthTokenEnv); env != nullptr) {
    source = kAuthTokenEnv;
    token = std::string(absl::StripAsciiWhitespace(env));
  }
  for (const char c : token) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the auth token from ", source,
          " has a space or control character (it goes into a header)"));
    }
  }
  return token;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security) {
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both --tls_cert_file and --tls_key_file");
  }
  if (security.tls_cert_file.empty() && !security.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs --tls_cert_file and --tls_key_file");
  }
  std::string cert, key, client_ca;
  if (!security.tls_cert_file.empty()) {
    absl::StatusOr<std::string> read =
        ReadWholeFile(security.tls_cert_file, "TLS certificate");
    if (!read.ok()) return read.status();
    cert = std::move(*read);
    read = ReadWholeFile(security.tls_key_file, "TLS key");
    if (!read.ok()) return read.status();
    key = std::move(*read);
    if (!security.tls_client_ca_file.empty()) {
      read = ReadWholeFile(security.tls_client_ca_file, "TLS client CA");
      if (!read.ok()) return read.status();
      client_ca = std::move(*read);
    }
  }
  if (cert.empty() && security.auth_token.empty()) {
    return grpc::InsecureServerCredentials();
  }
  return std::shared_ptr<grpc::ServerCredentials>(
      std::make_shared<MicrogptServerCredentials>(
          security.auth_token, std::move(cert), std::move(key),
          std::move(client_ca)));
}

}  // namespace microgpt
