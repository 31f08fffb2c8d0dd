#include "server/security_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the bearer token calls must carry (\"authorization: "
          "Bearer <token>\"); when empty, the MICROGPT_AUTH_TOKEN environment "
          "variable. Health and reflection stay open.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain: serve TLS (with --tls_key_file).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates: require client certificates signed by them "
          "(mutual TLS).");

namespace microgpt {

absl::Status SecurityFromFlags(bool require_token, ServerSecurity* security) {
  security->tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  security->tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  security->tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  absl::StatusOr<std::string> token =
      ReadAuthToken(absl::GetFlag(FLAGS_auth_token_file));
  if (!token.ok()) return token.status();
  if (require_token && token->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a bearer token is required: --auth_token_file or ", kAuthTokenEnv));
  }
  security->auth_token = std::move(*token);
  return absl::OkStatus();
}

}  // namespace microgpt
