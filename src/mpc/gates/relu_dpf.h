#pragma once
// The two-round ReLU gate on a reduced width (`--relu-gate dpf:N`), on the
// DPF comparison of mpc/dpf.h. For inputs within +-2^(N-1) it computes what
// the one-round gate (relu.h) computes, exactly, with a key of about a
// fifth of its size; an input outside that range has its sign read from its
// low N bits (the plaintext references do the same and count such inputs,
// Gate::input_bits; relu_positive in relu.h is the sign test).
//
// The constructions are SIGMA's (Gupta et al., PETS 2024): DReLU on a
// reduced width from a DPF comparison, then a select from a masked bit;
// derived here as implemented. The sign on N bits, with the
// masked input x^ = x + r (mod 2^64), z = x^ mod 2^N, z' = z mod 2^(N-1),
// r' = r mod 2^(N-1) and rho = bit N-1 of r,
//     x >= 0  <=>  1 xor z_(N-1) xor rho xor 1{z' < r'} = 1      (|x| < 2^(N-1))
// since (z - r) mod 2^N is x mod 2^N, whose top bit is z_(N-1) xor rho
// xor the borrow 1{z' < r'}. The DPF comparison gives xor shares of the
// borrow on N - 1 bits.
// Select: round 1 opens
// d^ = DReLU(x) xor m for a random bit m of the dealer's; round 2 opens
//     y^ = d * (x^ - r) + r_out,  d = m (d^ = 0) or 1 - m (d^ = 1),
// from additive shares of m, m * r, r and r_out: linear in the key once d^
// and x^ are public.
//
// Key of one element for one party (relu_dpf_key_bytes(N) = 16 (N - 6) + 33
// bytes; 449 at N = 32):
//   [0, K)       DPF key on N - 1 bits, alpha = r' (K = 16 (N - 6), dpf.h)
//   [K, K + 32)  this party's additive shares of m, m * r, r, r_out
//                (uniformly random for party 0, value minus it for party 1)
//   [K + 32]     this party's xor share of rho xor m (bit 0)
// Online: round 1 sends the masked bits 32 to a word (bit 2k of a word
// holds element k: the parties add their words and read the even bits,
// the xor of their bits, since no carry reaches an even bit when the odd
// bits are 0), round 2 one word per element.
#include <cstddef>
#include <cstdint>

#include "mpc/gate.h"

namespace dr::mpc {

size_t relu_dpf_key_bytes(int bits);
// Dealer: keys for n elements (key0/key1: n * relu_dpf_key_bytes(bits) bytes each).
void relu_dpf_gen(int bits, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1);
// Party b, round 1: its word-packed share of the masked bits d^ (32 per word).
std::vector<u64> relu_dpf_round1(int b, int bits, const uint8_t* keys, const u64* x_hat, size_t n);
// Party b, round 2: its share of y^ = relu(x) + r_out from the opened d^
// words, the sum of both parties' round-1 words (element k's bit is bit 2k
// of its word; the odd bits, which hold the carries, are not read).
void relu_dpf_round2(int b, int bits, const uint8_t* keys, const u64* x_hat, const std::vector<u64>& d_hat,
                     size_t n, u64* share_out);

// The gates (gate.h), one per width: ReLU, and max pooling's comparisons
// under the name "maxpool" (as max_gate in relu.h). bits in
// ReluGateChoice::kMinBits..kMaxBits, else std::invalid_argument.
const Gate& relu_dpf_gate(int bits);
const Gate& max_dpf_gate(int bits);

}  // namespace dr::mpc
