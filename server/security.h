// Transport security of the microgpt servers: TLS (optionally verifying
// client certificates) and a bearer token every call must carry, except the
// health and reflection services, which stay open for probes and tooling.
//
// The token check runs in gRPC core as the auth metadata processor of the
// listening port's credentials, before any handler, for plaintext and TLS
// ports alike; a call without "authorization: Bearer <token>" (or with a
// wrong one) fails with UNAUTHENTICATED and never reaches the service. The
// comparison takes constant time in the token's contents.
#ifndef MICROGPT_SERVER_SECURITY_H_
#define MICROGPT_SERVER_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace microgpt {

struct ServerSecurity {
  // PEM files; TLS when cert and key are set (both or neither). With a client
  // CA, clients must present a certificate it signed.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // The bearer token calls must carry; empty: no token required.
  std::string auth_token;
};

// Environment variable read for the token when no token file is given.
inline constexpr char kAuthTokenEnv[] = "MICROGPT_AUTH_TOKEN";

// The token from `token_file` (surrounding whitespace trimmed) or, when the
// file name is empty, from $MICROGPT_AUTH_TOKEN; "" when neither is set.
// INVALID_ARGUMENT for an unreadable or empty file or a token with spaces or
// control characters.
absl::StatusOr<std::string> ReadAuthToken(absl::string_view token_file);

// Credentials for ServerBuilder::AddListeningPort. INVALID_ARGUMENT when a
// PEM file cannot be read or only one of cert and key is given.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security);

// Whether a request to `method` ("/package.Service/Method") skips the token
// check: grpc.health.v1.Health and server reflection.
bool IsOpenMethod(absl::string_view method);

// a == b in time independent of where they differ (it depends on sizes only).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace microgpt

#endif  // MICROGPT_SERVER_SECURITY_H_
