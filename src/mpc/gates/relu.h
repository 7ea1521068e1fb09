#pragma once
// The ReLU gate over Z_2^64, on the DCF of mpc/dcf.h (Boyle et al., eprint
// 2020/1392). For an element with input mask r_in and output mask r_out, the
// gate gives each party an additive share of relu(x) + r_out from the masked
// input x^ = x + r_in, where relu(x) = x when x, read as a signed 64-bit
// integer, is >= 0, else 0. One DCF on the low 63 bits plus a few words per
// element. The two shares are summed by exchanging them (one round):
// relu^ = relu(x) + r_out. The derivation is in docs/private_inference.md
// ("ReLU").
//
// Key of one element for one party (relu_key_bytes() = 2,080 bytes), read and
// written through the typed view ReluKey in relu.cpp:
//   [0, 2048)     DCF key, n = 63, width 2, alpha = r_in mod 2^63,
//                 beta = (sigma, sigma * r_in), s = 1 xor MSB(r_in), sigma = 1 - 2s
//   [2048, 2080)  this party's additive shares of s, s * r_in, r_in, r_out
//                 (uniformly random share for party 0, value minus it for party 1)
#include <cstddef>
#include <cstdint>

#include "mpc/gate.h"

namespace dr::mpc {

size_t relu_key_bytes();
// Dealer: keys for n elements; key0/key1 receive n * relu_key_bytes() bytes each.
void relu_gen(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1);
// Party b: share_out[i] = its share of relu(x_i) + r_out_i, from x_hat[i] = x_i + r_in_i.
void relu_eval(int b, const uint8_t* keys, const u64* x_hat, size_t n, u64* share_out);

// The gate (gate.h) over the functions above: one round, one word per element each way.
const Gate& relu_gate();
// The same gate on the pairwise differences of a max pooling (program.h:
// max(a, b) = b + relu(a - b)), named "maxpool": its comparisons are not the
// network's ReLUs in any report, but cost what a ReLU costs.
const Gate& max_gate();

}  // namespace dr::mpc
