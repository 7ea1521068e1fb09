// AES-128 ECB / CTR wrappers over OpenSSL EVP (see aes.h).
#include "mpc/aes.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dr::mpc {

namespace {

// OpenSSL's reason for the last failure, for the error message.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "no OpenSSL error queued";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("AES (OpenSSL EVP): ") + what + " failed: " + openssl_error());
}

// EVP lengths are int: feed long inputs in slices well below INT_MAX,
// multiples of 16 so ECB never sees a partial block.
constexpr size_t kMaxSlice = size_t(1) << 30;

}  // namespace

const uint8_t kFssFixedKey[16] = {0x24, 0x3f, 0x6a, 0x88, 0x85, 0xa3, 0x08, 0xd3,
                                  0x13, 0x19, 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x44};

EvpCtx::EvpCtx() : ctx_(EVP_CIPHER_CTX_new()) {
  if (!ctx_) fail("EVP_CIPHER_CTX_new");
}
EvpCtx::~EvpCtx() { EVP_CIPHER_CTX_free(ctx_); }
EvpCtx::EvpCtx(EvpCtx&& o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
EvpCtx& EvpCtx::operator=(EvpCtx&& o) noexcept {
  if (this != &o) {
    EVP_CIPHER_CTX_free(ctx_);
    ctx_ = o.ctx_;
    o.ctx_ = nullptr;
  }
  return *this;
}

Aes128Ecb::Aes128Ecb(const uint8_t key[16]) {
  if (EVP_EncryptInit_ex(ctx_.get(), EVP_aes_128_ecb(), nullptr, key, nullptr) != 1)
    fail("EVP_EncryptInit_ex(AES-128-ECB)");
  // Whole blocks only: no padding, so each update returns exactly its input length.
  if (EVP_CIPHER_CTX_set_padding(ctx_.get(), 0) != 1) fail("EVP_CIPHER_CTX_set_padding");
}

void Aes128Ecb::encrypt_blocks(const uint8_t* in, uint8_t* out, size_t n) const {
  size_t bytes = n * 16;
  while (bytes > 0) {
    size_t len = bytes < kMaxSlice ? bytes : kMaxSlice;
    int outl = 0;
    // ECB keeps no state between blocks, so updating a const object's context
    // is safe as long as one thread uses it (fss_fixed_key_aes is per thread).
    if (EVP_EncryptUpdate(ctx_.get(), out, &outl, in, int(len)) != 1)
      fail("EVP_EncryptUpdate(AES-128-ECB)");
    if (size_t(outl) != len) fail("EVP_EncryptUpdate(AES-128-ECB) returned a short output");
    in += len;
    out += len;
    bytes -= len;
  }
}

Aes128Ctr::Aes128Ctr(const uint8_t key[16], const uint8_t iv[16]) {
  if (EVP_EncryptInit_ex(ctx_.get(), EVP_aes_128_ctr(), nullptr, key, iv) != 1)
    fail("EVP_EncryptInit_ex(AES-128-CTR)");
}

void Aes128Ctr::keystream(uint8_t* out, size_t n) {
  // CTR output = plaintext xor keystream: encrypting zeros in place yields the keystream.
  std::memset(out, 0, n);
  while (n > 0) {
    size_t len = n < kMaxSlice ? n : kMaxSlice;
    int outl = 0;
    if (EVP_EncryptUpdate(ctx_.get(), out, &outl, out, int(len)) != 1)
      fail("EVP_EncryptUpdate(AES-128-CTR)");
    if (size_t(outl) != len) fail("EVP_EncryptUpdate(AES-128-CTR) returned a short output");
    out += len;
    n -= len;
  }
}

const Aes128Ecb& fss_fixed_key_aes() {
  thread_local const Aes128Ecb aes(kFssFixedKey);
  return aes;
}

}  // namespace dr::mpc
