#include "util/hash.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace dr::util {

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 (OpenSSL EVP) cannot be initialised");
}

Sha256::~Sha256() = default;

Sha256& Sha256::update(const void* data, size_t n) {
  if (EVP_DigestUpdate(ctx_->md, data, n) != 1) throw std::runtime_error("SHA-256 (OpenSSL EVP) update failed");
  return *this;
}

Digest Sha256::final() {
  Digest d{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, d.data(), &len) != 1 || len != d.size())
    throw std::runtime_error("SHA-256 (OpenSSL EVP) failed");
  return d;
}

Digest sha256(const void* data, size_t n) { return Sha256().update(data, n).final(); }

std::string hex(const uint8_t* data, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[data[i] >> 4];
    s[2 * i + 1] = digits[data[i] & 15];
  }
  return s;
}

std::string sha256_hex(const std::string& data) { return hex(sha256(data.data(), data.size())); }

}  // namespace dr::util
