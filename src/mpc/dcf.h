#pragma once
// A distributed comparison function (DCF), the FSS primitive the comparison
// gates are built on (randomness: mpc/prg.h), after Boyle, Chandran, Gilboa,
// Gupta, Ishai, Kumaresan, Rathee: "Function Secret Sharing for Mixed-Mode and
// Fixed-Point Secure Computation" (EUROCRYPT 2021, eprint 2020/1392).
// Implemented from the paper. No torch here.
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
// MMO form, see dcf.cpp). All functions are safe to call from several threads
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

// --- for gates whose per-element key begins with a DCF key -------------------
// Where things are in a DCF key of depth n and payload width.
struct DcfLayout {
  int n, width, vb;     // depth, payload words, value blocks per side
  size_t level_bytes;   // s_CW (16, control bits in bits 0-1) + V_CW (8 * width)
  size_t final_offset;  // CW^(n+1): 8 * width bytes
  size_t key_bytes;
  const uint8_t* level(const uint8_t* key, int i) const { return key + 16 + size_t(i) * level_bytes; }
  uint8_t* level(uint8_t* key, int i) const { return key + 16 + size_t(i) * level_bytes; }
};
DcfLayout dcf_layout(int n, int width);  // throws std::runtime_error for n or width out of range
// As dcf_gen_batch / dcf_eval_batch with the keys `stride` (>= L.key_bytes)
// bytes apart: a gate's key holds the DCF key first and its own words after.
void dcf_gen_strided(const DcfLayout& L, const u64* alpha, const u64* beta, size_t count, Prg& rng,
                     uint8_t* key0, uint8_t* key1, size_t stride);
void dcf_eval_strided(int b, const DcfLayout& L, const uint8_t* keys, size_t stride, const u64* x, size_t count,
                      u64* out);
// std::runtime_error naming `who` unless b is 0 or 1.
void check_party(const char* who, int b);

}  // namespace dr::mpc
