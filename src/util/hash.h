#pragma once
// SHA-256 (OpenSSL EVP): the integrity checks of checkpoints, weights and
// private-inference keys, and the model hash of the runtime.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dr::util {

using Digest = std::array<uint8_t, 32>;

Digest sha256(const void* data, size_t n);
// Lower-case hex: "9f86d0...".
std::string hex(const uint8_t* data, size_t n);
template <size_t N>
std::string hex(const std::array<uint8_t, N>& a) { return hex(a.data(), N); }
// hex(sha256(data)).
std::string sha256_hex(const std::string& data);

// SHA-256 over several parts.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256& update(const void* data, size_t n);
  Digest final();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace dr::util
