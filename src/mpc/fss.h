#pragma once
// Function secret sharing for the ReLU gate: a distributed comparison
// function (DCF) and the ReLU gate built on it (randomness: mpc/prg.h), after
// Boyle, Chandran, Gilboa, Gupta, Ishai, Kumaresan, Rathee: "Function Secret
// Sharing for Mixed-Mode and Fixed-Point Secure Computation" (EUROCRYPT 2021,
// eprint 2020/1392). Implemented from the paper. No torch here.
//
// Ring: Z_2^64 (uint64_t arithmetic wraps). Party b is 0 (server) or 1
// (client); values are additive shares (x = x0 + x1 mod 2^64) or masked
// openings x^ = x + r (both parties know x^, only the dealer knows r).
// See docs/private_inference.md for the whole protocol.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mpc/prg.h"

namespace dr::mpc {

// --- DCF: f_{alpha,beta}(x) = beta if x < alpha, else 0 ----------------------
// Domain: n-bit unsigned integers (1 <= n <= 64); alpha and x must be < 2^n
// (else std::runtime_error). Payload: `width` elements of Z_2^64 (a vector
// beta, 1 <= width <= 2^20). Eval returns additive shares of f(x) over Z_2^64.
// Keys are flat byte strings of dcf_key_bytes(n, width) bytes:
//   [0, 16)                       root seed s_b^(0) (the only part that differs
//                                 between the two parties' keys)
//   16 + i*(16 + 8*width), i < n  level i+1: s_CW (16 bytes; its bits 0 and 1
//                                 carry t_CW^L and t_CW^R, seeds being 126-bit),
//                                 then V_CW (width words, little-endian)
//   16 + n*(16 + 8*width)         CW^(n+1) (width words)
// so dcf_key_bytes(n, w) = 16 + n*(16 + 8w) + 8w; n = 63, w = 2: 2,048 bytes.
// Evaluation costs n*(1 + ceil(w/2)) + ceil(w/2) AES blocks (fixed-key AES in
// MMO form, see fss.cpp). All functions are safe to call from several threads
// at once (each thread has its own AES context), with distinct Prg objects.
size_t dcf_key_bytes(int n, int width);
// Dealer: writes key0, key1 (each dcf_key_bytes long).
void dcf_gen(int n, u64 alpha, const u64* beta, int width, Prg& rng, uint8_t* key0, uint8_t* key1);
// Dealer, batched like dcf_eval_batch: `count` keys (stride dcf_key_bytes) for
// alpha[i] and beta[i*width .. (i+1)*width).
void dcf_gen_batch(int n, int width, const u64* alpha, const u64* beta, size_t count, Prg& rng,
                   uint8_t* keys0, uint8_t* keys1);
// Party b: out[0..width) = its share of f(x).
void dcf_eval(int b, int n, int width, const uint8_t* key, u64 x, u64* out);
// Batched evaluation of `count` keys (stride dcf_key_bytes) on `count` inputs:
// level by level over the batch so AES runs on many blocks at once.
// out[i*width .. (i+1)*width) = share of f_i(x[i]).
void dcf_eval_batch(int b, int n, int width, const uint8_t* keys, const u64* x, size_t count, u64* out);

// --- ReLU gate over Z_2^64 ---------------------------------------------------
// For an element with input mask r_in and output mask r_out, the gate gives
// each party an additive share of relu(x) + r_out from the masked input
// x^ = x + r_in, where relu(x) = x when x, read as a signed 64-bit integer, is
// >= 0, else 0. One DCF on the low 63 bits plus a few words per element.
// The two shares are summed by exchanging them (one round): relu^ = relu(x) + r_out.
// Key of one element for one party (relu_key_bytes() = 2,080 bytes):
//   [0, 2048)     DCF key, n = 63, width 2, alpha = r_in mod 2^63,
//                 beta = (sigma, sigma * r_in), s = 1 xor MSB(r_in), sigma = 1 - 2s
//   [2048, 2080)  this party's additive shares of s, s * r_in, r_in, r_out
//                 (uniformly random share for party 0, value minus it for party 1)
// The derivation is in docs/private_inference.md ("ReLU").
size_t relu_key_bytes();
// Dealer: keys for n elements; key0/key1 receive n * relu_key_bytes() bytes each.
void relu_gen(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1);
// Party b: share_out[i] = its share of relu(x_i) + r_out_i, from x_hat[i] = x_i + r_in_i.
void relu_eval(int b, const uint8_t* keys, const u64* x_hat, size_t n, u64* share_out);

}  // namespace dr::mpc
