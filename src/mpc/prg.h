#pragma once
// The runtime's randomness: one cryptographic stream type, seeded from the
// OS for everything secret (masks, shares, DCF seeds) and from a fixed seed
// where a stream must be reproduced (PRG-compressed shares, tests). No torch.
#include <cstddef>
#include <cstdint>

namespace dr::mpc {

using u64 = uint64_t;

// A cryptographic random stream: AES-128 in counter mode (OpenSSL EVP). The
// dealer seeds it from the OS (getrandom); tests may give a fixed seed.
// The stream of Prg(seed) is fixed for good (other code derives shares from
// seeds): the AES-128-CTR keystream with key = seed and initial counter block
// 0 (`openssl enc -aes-128-ctr -K <seed> -iv 00..00` on zeros), read in order;
// bytes/next_u64/fill all continue the same stream, however the reads are
// split; next_u64 and fill read 8 bytes per word, little-endian.
// Not thread-safe: one Prg per thread.
class Prg {
 public:
  Prg();                                  // seeded from getrandom(2); throws if the OS has no randomness
  explicit Prg(const uint8_t seed[16]);   // deterministic (tests, PRG-compressed shares)
  ~Prg();
  Prg(const Prg&) = delete;
  Prg& operator=(const Prg&) = delete;
  Prg(Prg&& o) noexcept;                  // a moved-from Prg throws on use
  Prg& operator=(Prg&& o) noexcept;
  void bytes(uint8_t* out, size_t n);
  u64 next_u64();
  void fill(u64* out, size_t n);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace dr::mpc
