#pragma once
// A distributed point function (DPF) with early termination, and the
// comparison it gives, the FSS primitive of the two-round ReLU gate
// (gates/relu_dpf.h). After Boyle, Gilboa, Ishai: "Function Secret Sharing:
// Improvements and Extensions" (CCS 2016, Fig. 1: the tree with a seed
// correction word s_CW and control-bit corrections t_CW^L, t_CW^R per level;
// Section 3.2.2: early termination, the last 7 levels of a one-bit output
// packed into one 128-bit leaf block). Implemented from the paper. No torch.
//
// The output group is {0,1}^128 under xor: the two parties' leaf blocks
// xor to the unit block e_(alpha mod 128) at alpha's leaf and to zero at
// every other leaf, and the control bits t_0, t_1 of a tree node xor to 1
// exactly on alpha's path.
//
// Comparison from the tree (the DPF is never expanded to its domain): for an
// n-bit x, x < alpha exactly when, at the first bit (from the top) where they
// differ, x has 0 and alpha 1. For a tree level i where x's bit is 0, the
// right child of x's node at that level is on alpha's path exactly when that
// is the case; at most one level can be the first difference. So
//     1{x < alpha} = xor over the levels i with x_i = 0 of t(right child)
//                    xor [the bits of x's leaf block above position x mod 128]
// (the leaf term covers x and alpha equal above the last 7 bits). Each party
// computes its share of every term from its own key: xor shares of the
// comparison, one AES block per level where x's bit is 1, two where it is 0,
// and one for the leaf.
//
// Domain: n-bit unsigned integers, 7 <= n <= 63; the tree has n - 7 levels.
// Key of one element for one party (dpf_layout(n).key_bytes = 16 * (n - 5)):
//   [0, 16)                root seed s_b (the only part that differs between
//                          the parties' keys; party b's root control bit is b)
//   16 + 16 i, i < n - 7   level i+1: s_CW, its bits 0 and 1 carrying t_CW^L
//                          and t_CW^R (seeds being 126-bit, as in dcf.h)
//   16 + 16 (n - 7)        the leaf correction word CW (one 128-bit block)
// The PRG is dcf.cpp's (fixed-key AES in MMO form, tweaked per side).
#include <cstddef>
#include <cstdint>

#include "mpc/prg.h"

namespace dr::mpc {

struct DpfLayout {
  int n = 0, levels = 0;  // domain bits; tree levels above the 128-bit leaves
  size_t key_bytes = 0;
  size_t level_offset(int i) const { return 16 + 16 * size_t(i); }
  size_t leaf_offset() const { return 16 + 16 * size_t(levels); }
};
constexpr int kDpfLeafBits = 7;  // 128 leaves per AES block
constexpr int kDpfMinBits = kDpfLeafBits, kDpfMaxBits = 63;
// Throws std::runtime_error for n outside kDpfMinBits..kDpfMaxBits.
DpfLayout dpf_layout(int n);

// Dealer: keys of the comparison with alpha[e] (< 2^n, else
// std::runtime_error) for `count` elements, written `stride` bytes apart
// (>= key_bytes: a gate's key holds the DPF key first and its own words after).
void dpf_lt_gen(const DpfLayout& L, const u64* alpha, size_t count, Prg& rng, uint8_t* key0, uint8_t* key1,
                size_t stride);
// Party b: bit[e] = its xor share of 1{x[e] < alpha[e]} (x[e] < 2^n, else
// std::runtime_error). Safe to call from several threads at once.
void dpf_lt_eval(int b, const DpfLayout& L, const uint8_t* keys, size_t stride, const u64* x, size_t count,
                 uint8_t* bit);

}  // namespace dr::mpc
