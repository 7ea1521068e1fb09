// The two-round ReLU gate of relu_dpf.h on the DPF comparison of dpf.h; the
// header derives it.
#include "mpc/gates/relu_dpf.h"

#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpc/dcf.h"
#include "mpc/dpf.h"
#include "mpc/gates/relu.h"
#include "mpc/linear.h"

namespace dr::mpc {

namespace {

constexpr size_t kChunk = 4096;  // elements per call of the DPF (it splits them further)
constexpr int kBitsPerWord = 32;  // masked bits opened per word, at the even positions

const DpfLayout& layout_of(int bits) {
  static const auto layouts = per_width<DpfLayout>([](int b) { return dpf_layout(b - 1); });
  check_relu_width("two-round ReLU gate", bits);
  return layouts[size_t(bits)];
}

// One element's key for one party: the DPF key (offset = its bytes), four
// share words, then the party's bit share.
template <class Byte>
struct Key : ShareWords<Byte> {
  enum Word { kM = 0, kMR = 1, kRin = 2, kRout = 3, kWords = 4 };  // m, m * r, r, r_out
  uint8_t bit() const { return this->at[this->offset + 8 * kWords] & 1; }
  void set_bit(uint8_t b) const { this->at[this->offset + 8 * kWords] = b; }
};

}  // namespace

size_t relu_dpf_key_bytes(int bits) { return layout_of(bits).key_bytes + 8 * Key<uint8_t>::kWords + 1; }

void relu_dpf_gen(int bits, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1) {
  const DpfLayout& L = layout_of(bits);
  const size_t kb = relu_dpf_key_bytes(bits);
  const int low = bits - 1;  // the comparison's domain
  std::vector<u64> alpha(std::min(n, kChunk)), rnd(5 * std::min(n, kChunk));
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t m = std::min(kChunk, n - c0);
    for (size_t e = 0; e < m; ++e) alpha[e] = low_bits(r_in[c0 + e], low);
    dpf_lt_gen(L, alpha.data(), m, rng, key0 + c0 * kb, key1 + c0 * kb, kb);
    rng.fill(rnd.data(), 5 * m);
    for (size_t e = 0; e < m; ++e) {
      const u64 r = r_in[c0 + e], mbit = rnd[5 * e + 4] & 1, rho = (r >> low) & 1;
      const u64 value[Key<uint8_t>::kWords] = {mbit, mbit * r, r, r_out[c0 + e]};
      const Key<uint8_t> k0{{key0 + (c0 + e) * kb, L.key_bytes}}, k1{{key1 + (c0 + e) * kb, L.key_bytes}};
      for (int j = 0; j < Key<uint8_t>::kWords; ++j) {
        const auto w = static_cast<Key<uint8_t>::Word>(j);
        k0.set_share(w, rnd[5 * e + size_t(j)]);
        k1.set_share(w, value[j] - rnd[5 * e + size_t(j)]);
      }
      const uint8_t b0 = uint8_t((rnd[5 * e + 4] >> 1) & 1);
      k0.set_bit(b0);
      k1.set_bit(uint8_t(b0 ^ rho ^ mbit));
    }
  }
}

std::vector<u64> relu_dpf_round1(int b, int bits, const uint8_t* keys, const u64* x_hat, size_t n) {
  check_party("relu_dpf_round1", b);
  const DpfLayout& L = layout_of(bits);
  const size_t kb = relu_dpf_key_bytes(bits);
  const int low = bits - 1;
  std::vector<u64> words((n + kBitsPerWord - 1) / kBitsPerWord, 0), z(std::min(n, kChunk));
  std::vector<uint8_t> borrow(std::min(n, kChunk));
  for (size_t c0 = 0; c0 < n; c0 += kChunk) {
    const size_t m = std::min(kChunk, n - c0);
    for (size_t e = 0; e < m; ++e) z[e] = low_bits(x_hat[c0 + e], low);
    dpf_lt_eval(b, L, keys + c0 * kb, kb, z.data(), m, borrow.data());  // shares of 1{z' < r'}
    for (size_t e = 0; e < m; ++e) {
      const size_t i = c0 + e;
      const u64 top = (x_hat[i] >> low) & 1;  // z_(N-1)
      u64 bit = borrow[e] ^ Key<const uint8_t>{{keys + i * kb, L.key_bytes}}.bit();
      if (b == 0) bit ^= 1 ^ top;
      words[i / kBitsPerWord] |= bit << (2 * (i % kBitsPerWord));
    }
  }
  return words;
}

void relu_dpf_round2(int b, int bits, const uint8_t* keys, const u64* x_hat, const std::vector<u64>& d_hat,
                     size_t n, u64* share_out) {
  check_party("relu_dpf_round2", b);
  const size_t dpf_bytes = layout_of(bits).key_bytes, kb = relu_dpf_key_bytes(bits);
  if (d_hat.size() != (n + kBitsPerWord - 1) / kBitsPerWord)
    throw std::runtime_error("relu_dpf_round2: " + std::to_string(d_hat.size()) + " opened words for " +
                             std::to_string(n) + " elements");
  for (size_t i = 0; i < n; ++i) {
    const Key<const uint8_t> k{{keys + i * kb, dpf_bytes}};
    const u64 x = x_hat[i], m = k.share(k.kM), mr = k.share(k.kMR), rout = k.share(k.kRout);
    const bool flipped = (d_hat[i / kBitsPerWord] >> (2 * (i % kBitsPerWord))) & 1;
    // d = m: m x^ - m r.  d = 1 - m: x^ - r - m x^ + m r.
    share_out[i] = flipped ? (b == 0 ? x : 0) - k.share(k.kRin) - m * x + mr + rout : m * x - mr + rout;
  }
}

namespace {

class ReluDpfGate : public ReluGateBase {
 public:
  using ReluGateBase::ReluGateBase;
  size_t key_bytes() const override { return relu_dpf_key_bytes(bits_); }
  int rounds() const override { return 2; }
  int64_t words_sent(int64_t elements) const override { return elements + (elements + kBitsPerWord - 1) / kBitsPerWord; }
  uint32_t key_format_version() const override { return 3; }

  void deal(const GateData&, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
            uint8_t* key1) const override {
    relu_dpf_gen(bits_, r_in, r_out, n, rng, key0, key1);
  }

  std::vector<u64> evaluate(Party p, const GateData&, const uint8_t* keys, const std::vector<u64>& x_hat,
                            const Open& open, int threads) const override {
    const int b = static_cast<int>(p);
    const size_t kb = key_bytes(), n = x_hat.size();
    // Threads take whole words of the round-1 bits: element ranges on multiples of 32.
    const int64_t words = int64_t((n + kBitsPerWord - 1) / kBitsPerWord);
    std::vector<u64> mine(size_t(words), 0);
    parallel_for(words, threads, [&](int64_t lo, int64_t hi) {
      const size_t first = size_t(lo) * kBitsPerWord, last = std::min(n, size_t(hi) * kBitsPerWord);
      const std::vector<u64> part = relu_dpf_round1(b, bits_, keys + first * kb, x_hat.data() + first, last - first);
      std::copy(part.begin(), part.end(), mine.begin() + lo);
    });
    const std::vector<u64> d_hat = open(mine);  // round 2 reads its even bits only (the odd ones hold carries)
    std::vector<u64> share(n);
    parallel_for(words, threads, [&](int64_t lo, int64_t hi) {
      const size_t first = size_t(lo) * kBitsPerWord, last = std::min(n, size_t(hi) * kBitsPerWord);
      const std::vector<u64> part(d_hat.begin() + lo, d_hat.begin() + hi);
      relu_dpf_round2(b, bits_, keys + first * kb, x_hat.data() + first, part, last - first, share.data() + first);
    });
    return open(share);
  }
};

const GateWidths<ReluDpfGate>& gates() {
  static const GateWidths<ReluDpfGate> table;
  return table;
}

}  // namespace

const Gate& relu_dpf_gate(int bits) { return gates().relu(bits); }
const Gate& max_dpf_gate(int bits) { return gates().max(bits); }

}  // namespace dr::mpc
