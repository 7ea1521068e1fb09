#pragma once
// AES-128 through OpenSSL EVP, for the FSS code only (fss.cpp and its tests):
// ECB over many blocks at once (the DCF's fixed-key PRG: one EVP call per tree
// level of a whole batch lets AES-NI pipeline the blocks) and CTR (the Prg's
// random stream). Not a general crypto API: no padding, no authentication.
#include <cstddef>
#include <cstdint>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace dr::mpc {

// One EVP context, owned; movable so it can live in a thread_local or a pimpl.
class EvpCtx {
 public:
  EvpCtx();
  ~EvpCtx();
  EvpCtx(EvpCtx&& o) noexcept;
  EvpCtx& operator=(EvpCtx&& o) noexcept;
  EvpCtx(const EvpCtx&) = delete;
  EvpCtx& operator=(const EvpCtx&) = delete;
  EVP_CIPHER_CTX* get() const { return ctx_; }

 private:
  EVP_CIPHER_CTX* ctx_;
};

// AES-128 in ECB mode under a fixed key: out[i] = AES_k(in[i]) for n blocks.
class Aes128Ecb {
 public:
  explicit Aes128Ecb(const uint8_t key[16]);
  // in and out: n * 16 bytes each; they may be the same buffer, not overlap otherwise.
  void encrypt_blocks(const uint8_t* in, uint8_t* out, size_t n) const;

 private:
  EvpCtx ctx_;
};

// AES-128 in counter mode, key `key`, initial counter block `iv` (big-endian
// 128-bit counter, as OpenSSL and NIST SP 800-38A): a keystream read in order.
// Reads of any length continue the stream exactly (EVP keeps the partial block).
class Aes128Ctr {
 public:
  Aes128Ctr(const uint8_t key[16], const uint8_t iv[16]);
  void keystream(uint8_t* out, size_t n);

 private:
  EvpCtx ctx_;
};

// The public fixed key of the DCF's PRG (see fss.cpp): the first 16 bytes of
// the fractional part of pi, a "nothing up my sleeve" constant.
extern const uint8_t kFssFixedKey[16];

// This thread's AES context under kFssFixedKey, created on first use. One per
// thread, so DCF evaluation may run on several threads at once.
const Aes128Ecb& fss_fixed_key_aes();

}  // namespace dr::mpc
