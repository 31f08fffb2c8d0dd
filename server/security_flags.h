// The security flags both servers share (defined in security_flags.cc):
//   --auth_token_file     file holding the bearer token (else the
//                         MICROGPT_AUTH_TOKEN environment variable)
//   --tls_cert_file, --tls_key_file   PEM certificate chain and key: TLS
//   --tls_client_ca_file  PEM CA: require and verify client certificates
#ifndef MICROGPT_SERVER_SECURITY_FLAGS_H_
#define MICROGPT_SERVER_SECURITY_FLAGS_H_

#include "absl/status/status.h"
#include "server/security.h"

namespace microgpt {

// Reads the flags (and the token) into `security`. With `require_token`, no
// token is INVALID_ARGUMENT; without, a token found is still enforced.
absl::Status SecurityFromFlags(bool require_token, ServerSecurity* security);

}  // namespace microgpt

#endif  // MICROGPT_SERVER_SECURITY_FLAGS_H_
