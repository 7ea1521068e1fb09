#pragma once
// What the FSS trees (dcf.cpp, dpf.cpp) share: 128-bit blocks, the key
// bytes read and written as little-endian words, and the fixed-key AES in
// Matyas-Meyer-Oseas form that expands a node's seed (dcf.cpp explains the
// PRG and its assumption). Internal to those files; no torch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "mpc/aes.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the FSS code reads key bytes and AES blocks as little-endian words"
#endif

namespace dr::mpc::fss {

using u64 = uint64_t;

struct Block {
  u64 lo, hi;  // bytes 0..7 and 8..15 of the AES block, little-endian
};
static_assert(sizeof(Block) == 16, "Block must be one AES block");

inline Block operator^(Block a, Block b) { return {a.lo ^ b.lo, a.hi ^ b.hi}; }
inline Block operator&(Block a, Block b) { return {a.lo & b.lo, a.hi & b.hi}; }
inline Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, 16);
  return b;
}
inline u64 load_u64(const uint8_t* p) {
  u64 v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void store_u64(uint8_t* p, u64 v) { std::memcpy(p, &v, 8); }
inline void store_block(uint8_t* p, Block b) { std::memcpy(p, &b, 16); }

// Seeds keep bits 2..127: bit 0 of an expanded block is the child's control
// bit, and a correction word's bits 0 and 1 carry t_CW^L and t_CW^R.
constexpr u64 kSeedMask = ~u64(3);
// The tweak "side" of a leaf's conversion (children use sides 0 and 1).
constexpr u64 kFinalSide = 2;

// Refuses (std::runtime_error, prefixed with the primitive's name, "DCF" or
// "DPF") a value `what` that does not fit the n-bit domain.
inline void check_in_domain(const char* fss, const char* what, int n, u64 v) {
  if (n < 64 && (v >> n) != 0)
    throw std::runtime_error(std::string(fss) + ": " + what + " = " + std::to_string(v) + " does not fit the " +
                             std::to_string(n) + "-bit domain");
}

// AES_k on m blocks with this thread's fixed-key context; the MMO feed-forward
// (xor of the input) is left to the caller, fused into the loop that reads
// the output.
inline void aes_fixed(const Block* in, Block* out, size_t m) {
  fss_fixed_key_aes().encrypt_blocks(reinterpret_cast<const uint8_t*>(in), reinterpret_cast<uint8_t*>(out), m);
}

// out[i] = H(in[i]) = AES_k(in[i]) xor in[i] for m blocks.
inline void mmo_hash(const Block* in, Block* out, size_t m) {
  aes_fixed(in, out, m);
  for (size_t i = 0; i < m; ++i) out[i] = out[i] ^ in[i];
}

}  // namespace dr::mpc::fss
