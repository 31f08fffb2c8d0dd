// SHA-256 digests (OpenSSL EVP) as 64 lowercase hex digits.
//
//   absl::StatusOr<std::string> hex = Sha256Hex("abc");  // "ba7816bf..."
//
//   Sha256Hasher hasher;
//   for (const std::string& part : parts) hasher.Update(part);
//   absl::StatusOr<std::string> digest = hasher.HexDigest();
//
// Errors (INTERNAL) only come from OpenSSL itself, e.g. out of memory.
#ifndef MICROGPT_COMMON_SHA256_H_
#define MICROGPT_COMMON_SHA256_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace microgpt {

// The SHA-256 of `data`.
absl::StatusOr<std::string> Sha256Hex(absl::string_view data);

// True for 64 lowercase hex digits, the form Sha256Hex returns.
bool IsSha256Hex(absl::string_view hex);

// An incremental SHA-256. Not copyable; HexDigest() ends it.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(absl::string_view data);
  // The digest of everything passed to Update. Call it once.
  absl::StatusOr<std::string> HexDigest();

 private:
  evp_md_ctx_st* ctx_;
  bool ok_;
  bool finished_ = false;
};

}  // namespace microgpt

#endif  // MICROGPT_COMMON_SHA256_H_
