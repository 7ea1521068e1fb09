// The DCF of dcf.h, after Boyle et al. (eprint 2020/1392: the tree
// construction with correction words s_CW, V_CW, t_CW^L, t_CW^R per level and
// a final CW^(n+1), over the group Z_2^64^width). Implemented from the paper.
//
// The PRG inside the tree. A node's seed s expands, for one side d (0 = left,
// 1 = right), into blocks
//     G_d(s)_j = H(s xor T(d, j)),   H(z) = AES_k(z) xor z     (Matyas-Meyer-Oseas)
// with k the public fixed key kFssFixedKey (aes.h) and distinct public tweaks
// T(d, j) = (lo: j, hi: d + 1), j = 0 for the child's seed and control bit,
// j = 1..ceil(width/2) for the child's value words. The final conversion of a
// leaf seed uses T(2, j) = (lo: j, hi: 3). Security: modelling AES under a
// fixed public key as a random permutation pi, the blocks pi(s^T) ^ s ^ T for
// distinct T and a secret uniform s (126 bits, below) are indistinguishable
// from uniform unless the adversary queries pi at one of the points s ^ T,
// probability about q / 2^126 for q queries (the standard
// correlation-robustness assumption on fixed-key AES in MMO form, as in
// Guo-Katz-Wang-Yu, S&P 2020); the feed-forward makes H one-way where a bare
// pi would be inverted from its output. Because only the side the input bit
// selects is needed at evaluation, each side has its own tweaks and the
// evaluator computes 1 + ceil(width/2) blocks per level, never both sides.
//
// Seeds are 126 bits: the child's control bit t is bit 0 of its seed block,
// and bits 0 and 1 are then cleared, so s_CW = s0^Lose xor s1^Lose has its two
// low bits free to carry t_CW^L (bit 0) and t_CW^R (bit 1): a level's
// correction word is 16 + 8*width bytes.
#include "mpc/dcf.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "mpc/fss_block.h"

namespace dr::mpc {

namespace {

using namespace fss;

// (-1)^neg * v with neg an all-zeros or all-ones mask.
inline u64 cneg(u64 v, u64 neg) { return (v ^ neg) - neg; }

// Word k of the value blocks starting at v (block k/2, low or high half).
inline u64 value_word(const Block* v, int k) { return (k & 1) ? v[k >> 1].hi : v[k >> 1].lo; }

// Elements per chunk. Evaluation: 64 elements = 128 AES blocks per EVP call
// for the ReLU's DCF, enough for AES-NI's 8-block pipeline to run full, and
// a level's whole working set (AES input and output, state, the keys' cache
// lines) stays in L1; measured on Zen 4, 64 beats 512 by about 9% (at 512
// the AES buffers alone fill the 32 KB L1). Generation expands four times as
// many blocks per element and measured best at 512. The ReLU gate
// (gates/relu.cpp) hands the DCF 4,096 elements per call, split as above.
constexpr size_t kEvalChunk = 64;
constexpr size_t kGenChunk = 512;

// The loops below are templates on the payload width W so that the common
// widths (1 and 2, the ReLU's) unroll; W = 0 reads the width at run time.
template <int W>
inline int width_of(const DcfLayout& L) { return W ? W : L.width; }

// ---------------------------------------------------------------------------
// Evaluation (one party), chunk by chunk, level by level
// ---------------------------------------------------------------------------

struct EvalState {
  std::vector<Block> seed, in, out;
  std::vector<uint8_t> t;
  std::vector<u64> v;  // running output share, width words per element
  EvalState(const DcfLayout& L, size_t chunk)
      : seed(chunk), in(chunk * (1 + L.vb)), out(chunk * (1 + L.vb)), t(chunk), v(chunk * L.width) {}
};

// One tree level for m elements: expand the side x selects, apply the
// correction word where t = 1, accumulate (-1)^b * (value + t * V_CW).
template <int W>
void eval_level(const DcfLayout& L, int b, int i, const uint8_t* keys, size_t stride,
                const u64* x, size_t m, EvalState& st) {
  const int w = width_of<W>(L), bpe = 1 + (w + 1) / 2, shift = L.n - 1 - i;
  for (size_t e = 0; e < m; ++e) {
    const u64 side = (x[e] >> shift) & 1;
    for (int j = 0; j < bpe; ++j) st.in[e * bpe + j] = st.seed[e] ^ Block{u64(j), side + 1};
  }
  aes_fixed(st.in.data(), st.out.data(), m * bpe);
  const u64 neg = b ? ~u64(0) : 0;
  for (size_t e = 0; e < m; ++e) {
    const uint8_t* cw = L.level(keys + e * stride, i);
    // The keys are read once, a level at a time, 2 KB apart: fetch the
    // correction word two levels ahead, which hardware prefetchers miss.
    __builtin_prefetch(cw + 2 * L.level_bytes);
    const Block scw = load_block(cw);
    const u64 side = (x[e] >> shift) & 1, t = st.t[e], tmask = u64(0) - t;
    const Block* o = &st.out[e * bpe];
    const Block* in = &st.in[e * bpe];
    const Block r = o[0] ^ in[0];  // H = AES(z) xor z
    st.t[e] = uint8_t((r.lo & 1) ^ (t & (scw.lo >> side) & 1));
    st.seed[e] = {(r.lo ^ (scw.lo & tmask)) & kSeedMask, r.hi ^ (scw.hi & tmask)};
    u64* v = &st.v[e * w];
    for (int k = 0; k < w; ++k) {
      const u64 word = value_word(o + 1, k) ^ value_word(in + 1, k);
      v[k] += cneg(word + (load_u64(cw + 16 + 8 * k) & tmask), neg);
    }
  }
}

// Leaf: V += (-1)^b * (Convert(s) + t * CW^(n+1)), then write the shares.
template <int W>
void eval_final(const DcfLayout& L, int b, const uint8_t* keys, size_t stride, size_t m,
                EvalState& st, u64* out) {
  const int w = width_of<W>(L), vb = (w + 1) / 2;
  for (size_t e = 0; e < m; ++e)
    for (int j = 0; j < vb; ++j) st.in[e * vb + j] = st.seed[e] ^ Block{u64(j), kFinalSide + 1};
  aes_fixed(st.in.data(), st.out.data(), m * vb);
  const u64 neg = b ? ~u64(0) : 0;
  for (size_t e = 0; e < m; ++e) {
    const uint8_t* cw = keys + e * stride + L.final_offset;
    const u64 tmask = u64(0) - st.t[e];
    for (int k = 0; k < w; ++k) {
      const u64 conv = value_word(&st.out[e * vb], k) ^ value_word(&st.in[e * vb], k);
      out[e * w + k] = st.v[e * w + k] + cneg(conv + (load_u64(cw + 8 * k) & tmask), neg);
    }
  }
}

template <int W>
void eval_chunks(int b, const DcfLayout& L, const uint8_t* keys, size_t stride, const u64* x,
                 size_t count, u64* out) {
  EvalState st(L, std::min(count, kEvalChunk));
  for (size_t c0 = 0; c0 < count; c0 += kEvalChunk) {
    const size_t m = std::min(kEvalChunk, count - c0);
    const uint8_t* k = keys + c0 * stride;
    for (size_t e = 0; e < m; ++e) {
      st.seed[e] = load_block(k + e * stride);
      __builtin_prefetch(L.level(k + e * stride, 1));  // the seed's load brings level 0's line
    }
    std::fill(st.t.begin(), st.t.begin() + m, uint8_t(b));
    std::fill(st.v.begin(), st.v.begin() + m * L.width, 0);
    for (int i = 0; i < L.n; ++i) eval_level<W>(L, b, i, k, stride, x + c0, m, st);
    eval_final<W>(L, b, k, stride, m, st, out + c0 * L.width);
  }
}

// ---------------------------------------------------------------------------
// Key generation (dealer), batched the same way
// ---------------------------------------------------------------------------

struct GenState {
  std::vector<Block> seed[2], in, out;
  std::vector<uint8_t> t[2];
  std::vector<u64> va;  // V_alpha: the on-path sum of both parties' values
  GenState(const DcfLayout& L, size_t chunk)
      : in(chunk * 4 * (1 + L.vb)), out(chunk * 4 * (1 + L.vb)), va(chunk * L.width) {
    for (int p = 0; p < 2; ++p) {
      seed[p].resize(chunk);
      t[p].resize(chunk);
    }
  }
};

// The level-i correction word of one element from both parties' expansions
// r[p][d] (blocks of party p, side d); updates V_alpha, seeds and bits.
template <int W>
void gen_element_level(const DcfLayout& L, int i, u64 alpha, const u64* beta, const Block* r[2][2],
                       size_t e, GenState& st, uint8_t* cw0, uint8_t* cw1) {
  const int w = width_of<W>(L);
  const int keep = int((alpha >> (L.n - 1 - i)) & 1), lose = 1 - keep;
  u64 tb[2][2];  // control bit of party p's child on side d
  for (int p = 0; p < 2; ++p)
    for (int d = 0; d < 2; ++d) tb[p][d] = r[p][d][0].lo & 1;
  Block scw = r[0][lose][0] ^ r[1][lose][0];
  scw.lo &= kSeedMask;
  const u64 tcw[2] = {tb[0][0] ^ tb[1][0] ^ u64(keep) ^ 1, tb[0][1] ^ tb[1][1] ^ u64(keep)};
  const u64 neg1 = u64(0) - st.t[1][e];  // (-1)^{t_1}
  u64* va = &st.va[e * w];
  for (int k = 0; k < w; ++k) {
    u64 vcw = value_word(r[1][lose] + 1, k) - value_word(r[0][lose] + 1, k) - va[k];
    vcw += beta[k] & (u64(0) - u64(keep));  // losing the left side: every x there is < alpha
    vcw = cneg(vcw, neg1);
    va[k] += value_word(r[0][keep] + 1, k) - value_word(r[1][keep] + 1, k) + cneg(vcw, neg1);
    store_u64(cw0 + 16 + 8 * k, vcw);
    store_u64(cw1 + 16 + 8 * k, vcw);
  }
  Block packed = scw;
  packed.lo |= tcw[0] | (tcw[1] << 1);
  store_block(cw0, packed);
  store_block(cw1, packed);
  for (int p = 0; p < 2; ++p) {
    const u64 t = st.t[p][e], tmask = u64(0) - t;
    const Block s = r[p][keep][0];
    st.seed[p][e] = {(s.lo ^ (scw.lo & tmask)) & kSeedMask, s.hi ^ (scw.hi & tmask)};
    st.t[p][e] = uint8_t(tb[p][keep] ^ (t & tcw[keep]));
  }
}

template <int W>
void gen_level(const DcfLayout& L, int i, const u64* alpha, const u64* beta, size_t m, GenState& st,
               uint8_t* key0, uint8_t* key1, size_t stride) {
  const int w = width_of<W>(L), bpe = 1 + (w + 1) / 2;
  for (size_t e = 0; e < m; ++e)
    for (int p = 0; p < 2; ++p)
      for (int d = 0; d < 2; ++d)
        for (int j = 0; j < bpe; ++j)
          st.in[((e * 2 + p) * 2 + d) * bpe + j] = st.seed[p][e] ^ Block{u64(j), u64(d) + 1};
  mmo_hash(st.in.data(), st.out.data(), m * 4 * bpe);
  for (size_t e = 0; e < m; ++e) {
    const Block* r[2][2];
    for (int p = 0; p < 2; ++p)
      for (int d = 0; d < 2; ++d) r[p][d] = &st.out[((e * 2 + p) * 2 + d) * bpe];
    gen_element_level<W>(L, i, alpha[e], beta + e * w, r, e, st, L.level(key0 + e * stride, i),
                      L.level(key1 + e * stride, i));
  }
}

// CW^(n+1) = (-1)^{t_1} * (Convert(s_1) - Convert(s_0) - V_alpha).
template <int W>
void gen_final(const DcfLayout& L, size_t m, GenState& st, uint8_t* key0, uint8_t* key1,
               size_t stride) {
  const int w = width_of<W>(L), vb = (w + 1) / 2;
  for (size_t e = 0; e < m; ++e)
    for (int p = 0; p < 2; ++p)
      for (int j = 0; j < vb; ++j)
        st.in[(e * 2 + p) * vb + j] = st.seed[p][e] ^ Block{u64(j), kFinalSide + 1};
  mmo_hash(st.in.data(), st.out.data(), m * 2 * vb);
  for (size_t e = 0; e < m; ++e) {
    const u64 neg1 = u64(0) - st.t[1][e];
    for (int k = 0; k < w; ++k) {
      u64 c0 = value_word(&st.out[(e * 2 + 0) * vb], k), c1 = value_word(&st.out[(e * 2 + 1) * vb], k);
      u64 cw = cneg(c1 - c0 - st.va[e * w + k], neg1);
      store_u64(key0 + e * stride + L.final_offset + 8 * k, cw);
      store_u64(key1 + e * stride + L.final_offset + 8 * k, cw);
    }
  }
}

template <int W>
void gen_chunks(const DcfLayout& L, const u64* alpha, const u64* beta, size_t count, Prg& rng,
                uint8_t* key0, uint8_t* key1, size_t stride) {
  GenState st(L, std::min(count, kGenChunk));
  for (size_t c0 = 0; c0 < count; c0 += kGenChunk) {
    const size_t m = std::min(kGenChunk, count - c0);
    uint8_t* k0 = key0 + c0 * stride;
    uint8_t* k1 = key1 + c0 * stride;
    for (size_t e = 0; e < m; ++e) {
      rng.bytes(k0 + e * stride, 16);  // independent uniform root seeds
      rng.bytes(k1 + e * stride, 16);
      st.seed[0][e] = load_block(k0 + e * stride);
      st.seed[1][e] = load_block(k1 + e * stride);
      st.t[0][e] = 0;
      st.t[1][e] = 1;
    }
    std::fill(st.va.begin(), st.va.begin() + m * L.width, 0);
    for (int i = 0; i < L.n; ++i)
      gen_level<W>(L, i, alpha + c0, beta + c0 * L.width, m, st, k0, k1, stride);
    gen_final<W>(L, m, st, k0, k1, stride);
  }
}

}  // namespace

constexpr int kMaxWidth = 1 << 20;  // keeps every size computation far from overflow

DcfLayout dcf_layout(int n, int width) {
  if (n < 1 || n > 64)
    throw std::runtime_error("DCF: domain bits n = " + std::to_string(n) + " outside 1..64");
  if (width < 1 || width > kMaxWidth)
    throw std::runtime_error("DCF: payload width " + std::to_string(width) + " outside 1.." +
                             std::to_string(kMaxWidth));
  DcfLayout L;
  L.n = n;
  L.width = width;
  L.vb = (width + 1) / 2;
  L.level_bytes = 16 + 8 * size_t(width);
  L.final_offset = 16 + size_t(n) * L.level_bytes;
  L.key_bytes = L.final_offset + 8 * size_t(width);
  return L;
}

void check_party(const char* who, int b) {
  if (b != 0 && b != 1)
    throw std::runtime_error(std::string(who) + ": party must be 0 or 1, got " + std::to_string(b));
}

void dcf_eval_strided(int b, const DcfLayout& L, const uint8_t* keys, size_t stride, const u64* x,
                      size_t count, u64* out) {
  check_party("dcf_eval", b);
  for (size_t e = 0; e < count; ++e) check_in_domain("DCF", "input x", L.n, x[e]);
  switch (L.width) {
    case 1: return eval_chunks<1>(b, L, keys, stride, x, count, out);
    case 2: return eval_chunks<2>(b, L, keys, stride, x, count, out);
    default: return eval_chunks<0>(b, L, keys, stride, x, count, out);
  }
}

void dcf_gen_strided(const DcfLayout& L, const u64* alpha, const u64* beta, size_t count, Prg& rng,
                     uint8_t* key0, uint8_t* key1, size_t stride) {
  for (size_t e = 0; e < count; ++e) check_in_domain("DCF", "alpha", L.n, alpha[e]);
  switch (L.width) {
    case 1: return gen_chunks<1>(L, alpha, beta, count, rng, key0, key1, stride);
    case 2: return gen_chunks<2>(L, alpha, beta, count, rng, key0, key1, stride);
    default: return gen_chunks<0>(L, alpha, beta, count, rng, key0, key1, stride);
  }
}

// ---------------------------------------------------------------------------
// DCF
// ---------------------------------------------------------------------------

size_t dcf_key_bytes(int n, int width) { return dcf_layout(n, width).key_bytes; }

void dcf_gen(int n, u64 alpha, const u64* beta, int width, Prg& rng, uint8_t* key0, uint8_t* key1) {
  const DcfLayout L = dcf_layout(n, width);
  dcf_gen_strided(L, &alpha, beta, 1, rng, key0, key1, L.key_bytes);
}

void dcf_gen_batch(int n, int width, const u64* alpha, const u64* beta, size_t count, Prg& rng,
                   uint8_t* keys0, uint8_t* keys1) {
  const DcfLayout L = dcf_layout(n, width);
  dcf_gen_strided(L, alpha, beta, count, rng, keys0, keys1, L.key_bytes);
}

void dcf_eval(int b, int n, int width, const uint8_t* key, u64 x, u64* out) {
  const DcfLayout L = dcf_layout(n, width);
  dcf_eval_strided(b, L, key, L.key_bytes, &x, 1, out);
}

void dcf_eval_batch(int b, int n, int width, const uint8_t* keys, const u64* x, size_t count, u64* out) {
  const DcfLayout L = dcf_layout(n, width);
  dcf_eval_strided(b, L, keys, L.key_bytes, x, count, out);
}

}  // namespace dr::mpc
