#include "common/sha256.h"

#include "openssl/evp.h"

namespace microgpt {
namespace {

std::string ToHex(const unsigned char* bytes, unsigned int size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kDigits[bytes[i] >> 4]);
    hex.push_back(kDigits[bytes[i] & 0xF]);
  }
  return hex;
}

}  // namespace

absl::StatusOr<std::string> Sha256Hex(absl::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.HexDigest();
}

bool IsSha256Hex(absl::string_view hex) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1;
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

void Sha256Hasher::Update(absl::string_view data) {
  if (!ok_ || finished_) {
    ok_ = false;
    return;
  }
  ok_ = EVP_DigestUpdate(ctx_, data.data(), data.size()) == 1;
}

absl::StatusOr<std::string> Sha256Hasher::HexDigest() {
  if (finished_) {
    return absl::FailedPreconditionError("SHA-256 digest already taken");
  }
  finished_ = true;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!ok_ || EVP_DigestFinal_ex(ctx_, digest, &size) != 1 || size != 32) {
    return absl::InternalError("OpenSSL failed to compute a SHA-256 digest");
  }
  return ToHex(digest, size);
}

}  // namespace microgpt
