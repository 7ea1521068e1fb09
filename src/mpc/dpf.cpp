// The DPF comparison of dpf.h, after Boyle, Gilboa, Ishai (CCS 2016, Fig. 1
// with early termination, Section 3.2.2), over the output group {0,1}^128.
// Implemented from the paper; the comparison read off the tree is derived in
// dpf.h.
#include "mpc/dpf.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpc/dcf.h"
#include "mpc/fss_block.h"

namespace dr::mpc {

namespace {

using namespace fss;

// Elements per chunk: as the DCF's (dcf.cpp), small enough for a level's AES
// buffers to stay in L1 at evaluation, larger at generation.
constexpr size_t kEvalChunk = 64, kGenChunk = 512;

inline Block side_tweak(u64 side) { return Block{0, side + 1}; }

// The unit block with bit j set (j < 128), and the bits above j.
inline Block unit(u64 j) { return j < 64 ? Block{u64(1) << j, 0} : Block{0, u64(1) << (j - 64)}; }
inline Block above(u64 j) {
  if (j < 63) return Block{~u64(0) << (j + 1), ~u64(0)};
  if (j == 63) return Block{0, ~u64(0)};
  return Block{0, j == 127 ? 0 : ~u64(0) << (j - 63)};
}
inline u64 parity(Block b) { return u64(__builtin_popcountll(b.lo) ^ __builtin_popcountll(b.hi)) & 1; }

// A child's seed and control bit from its expanded block r, corrected by the
// level's word where the parent's bit t is 1 (t_CW of that side: tcw).
inline Block child_seed(Block r, Block scw, u64 t) {
  const u64 tmask = u64(0) - t;
  return Block{(r.lo ^ (scw.lo & tmask)) & kSeedMask, r.hi ^ (scw.hi & tmask)};
}
inline u64 child_bit(Block r, u64 t, u64 tcw) { return (r.lo & 1) ^ (t & tcw); }

void eval_chunk(int b, const DpfLayout& L, const uint8_t* keys, size_t stride, const u64* x, size_t m,
                uint8_t* bit, std::vector<Block>& seed, std::vector<uint8_t>& t, std::vector<Block>& in,
                std::vector<Block>& out) {
  for (size_t e = 0; e < m; ++e) {
    seed[e] = load_block(keys + e * stride);
    t[e] = uint8_t(b);
    bit[e] = 0;
  }
  for (int i = 0; i < L.levels; ++i) {
    const int shift = L.n - 1 - i;
    // Per element: the side x goes to, then (x's bit 0) the right sibling.
    // Branch-free (the bits are random): both blocks are written, and the
    // next element's start advances by 2 - side.
    size_t k = 0;
    for (size_t e = 0; e < m; ++e) {
      const u64 side = (x[e] >> shift) & 1;
      in[k] = seed[e] ^ side_tweak(side);
      in[k + 1] = seed[e] ^ side_tweak(1);
      k += 2 - side;
    }
    aes_fixed(in.data(), out.data(), k);
    k = 0;
    for (size_t e = 0; e < m; ++e) {
      const uint8_t* cw = keys + e * stride + L.level_offset(i);
      __builtin_prefetch(cw + 16);  // the next level's word, a key's length from its neighbour's
      const u64 side = (x[e] >> shift) & 1, te = t[e];
      const Block scw = load_block(cw);
      const Block r = out[k] ^ in[k], right = out[k + 1] ^ in[k + 1];  // right: meaningful where side = 0
      bit[e] ^= uint8_t(child_bit(right, te, (scw.lo >> 1) & 1) & (1 - side));
      seed[e] = child_seed(r, scw, te);
      t[e] = uint8_t(child_bit(r, te, (scw.lo >> side) & 1));
      k += 2 - side;
    }
  }
  for (size_t e = 0; e < m; ++e) in[e] = seed[e] ^ side_tweak(kFinalSide);
  aes_fixed(in.data(), out.data(), m);
  for (size_t e = 0; e < m; ++e) {
    const Block cw = load_block(keys + e * stride + L.leaf_offset());
    const Block leaf = out[e] ^ in[e] ^ (cw & Block{u64(0) - t[e], u64(0) - t[e]});
    bit[e] ^= uint8_t(parity(leaf & above(x[e] & 127)));
  }
}

void gen_chunk(const DpfLayout& L, const u64* alpha, size_t m, Prg& rng, uint8_t* key0, uint8_t* key1,
               size_t stride) {
  std::vector<Block> seed[2] = {std::vector<Block>(m), std::vector<Block>(m)};
  std::vector<uint8_t> t[2] = {std::vector<uint8_t>(m, 0), std::vector<uint8_t>(m, 1)};
  std::vector<Block> in(4 * m), out(4 * m);
  for (size_t e = 0; e < m; ++e) {
    rng.bytes(key0 + e * stride, 16);  // independent uniform root seeds
    rng.bytes(key1 + e * stride, 16);
    seed[0][e] = load_block(key0 + e * stride);
    seed[1][e] = load_block(key1 + e * stride);
  }
  for (int i = 0; i < L.levels; ++i) {
    for (size_t e = 0; e < m; ++e)
      for (int p = 0; p < 2; ++p)
        for (u64 d = 0; d < 2; ++d) in[(e * 2 + size_t(p)) * 2 + d] = seed[p][e] ^ side_tweak(d);
    mmo_hash(in.data(), out.data(), 4 * m);
    for (size_t e = 0; e < m; ++e) {
      const Block* r[2] = {&out[e * 4], &out[e * 4 + 2]};  // r[p][d]: party p's child on side d
      const u64 keep = (alpha[e] >> (L.n - 1 - i)) & 1, lose = 1 - keep;
      Block scw = r[0][lose] ^ r[1][lose];
      scw.lo &= kSeedMask;
      const u64 tcw[2] = {(r[0][0].lo ^ r[1][0].lo ^ keep ^ 1) & 1, (r[0][1].lo ^ r[1][1].lo ^ keep) & 1};
      Block packed = scw;
      packed.lo |= tcw[0] | (tcw[1] << 1);
      store_block(key0 + e * stride + L.level_offset(i), packed);
      store_block(key1 + e * stride + L.level_offset(i), packed);
      for (int p = 0; p < 2; ++p) {
        const u64 tp = t[p][e];
        seed[p][e] = child_seed(r[p][keep], scw, tp);
        t[p][e] = uint8_t(child_bit(r[p][keep], tp, tcw[keep]));
      }
    }
  }
  // CW = Convert(s_0) xor Convert(s_1) xor e_(alpha mod 128): the leaf blocks
  // then xor to the unit block on alpha's path (t_0 xor t_1 = 1), to zero off it.
  for (size_t e = 0; e < m; ++e)
    for (int p = 0; p < 2; ++p) in[e * 2 + size_t(p)] = seed[p][e] ^ side_tweak(kFinalSide);
  mmo_hash(in.data(), out.data(), 2 * m);
  for (size_t e = 0; e < m; ++e) {
    const Block cw = out[e * 2] ^ out[e * 2 + 1] ^ unit(alpha[e] & 127);
    store_block(key0 + e * stride + L.leaf_offset(), cw);
    store_block(key1 + e * stride + L.leaf_offset(), cw);
  }
}

}  // namespace

DpfLayout dpf_layout(int n) {
  if (n < kDpfMinBits || n > kDpfMaxBits)
    throw std::runtime_error("DPF: domain bits n = " + std::to_string(n) + " outside " +
                             std::to_string(kDpfMinBits) + ".." + std::to_string(kDpfMaxBits));
  DpfLayout L;
  L.n = n;
  L.levels = n - kDpfLeafBits;
  L.key_bytes = L.leaf_offset() + 16;
  return L;
}

void dpf_lt_gen(const DpfLayout& L, const u64* alpha, size_t count, Prg& rng, uint8_t* key0, uint8_t* key1,
                size_t stride) {
  for (size_t e = 0; e < count; ++e) check_in_domain("DPF", "alpha", L.n, alpha[e]);
  for (size_t c0 = 0; c0 < count; c0 += kGenChunk)
    gen_chunk(L, alpha + c0, std::min(kGenChunk, count - c0), rng, key0 + c0 * stride, key1 + c0 * stride, stride);
}

void dpf_lt_eval(int b, const DpfLayout& L, const uint8_t* keys, size_t stride, const u64* x, size_t count,
                 uint8_t* bit) {
  check_party("dpf_lt_eval", b);
  for (size_t e = 0; e < count; ++e) check_in_domain("DPF", "input x", L.n, x[e]);
  const size_t chunk = std::min(count, kEvalChunk);
  std::vector<Block> seed(chunk), in(2 * chunk), out(2 * chunk);
  std::vector<uint8_t> t(chunk);
  for (size_t c0 = 0; c0 < count; c0 += kEvalChunk)
    eval_chunk(b, L, keys + c0 * stride, stride, x + c0, std::min(kEvalChunk, count - c0), bit + c0, seed, t, in,
               out);
}

}  // namespace dr::mpc
