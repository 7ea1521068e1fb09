// The ReLU gate of relu.h on the DCF of dcf.h. Implemented from Boyle et al.
// (eprint 2020/1392); docs/private_inference.md ("ReLU") derives the combination.
#include "mpc/gates/relu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "mpc/dcf.h"
#include "mpc/linear.h"

namespace dr::mpc {

namespace {

constexpr int kReluBits = 63, kReluWidth = 2;
constexpr u64 kLow63 = (u64(1) << 63) - 1;
// Elements per call: the dealer's buffers stay small; the evaluator hands the
// DCF this many elements, which it splits into its own chunks.
constexpr size_t kGenChunk = 512, kEvalChunk = 4096;

const DcfLayout& relu_dcf() {
  static const DcfLayout L = dcf_layout(kReluBits, kReluWidth);  // immutable after init
  return L;
}
// Where the shares start in an element's key: read once, not per word on
// the evaluation's hot path.
const size_t kSharesAt = relu_dcf().key_bytes;

// One element's key for one party, a typed view over its bytes: the DCF key,
// then this party's shares of four words (Byte: uint8_t to write, const
// uint8_t to read).
template <class Byte>
struct ReluKey {
  enum Word { kS = 0, kSR = 1, kRin = 2, kRout = 3, kWords = 4 };  // s, s * r_in, r_in, r_out
  Byte* at;
  Byte* dcf() const { return at; }
  u64 share(Word w) const {
    u64 v;
    std::memcpy(&v, at + kSharesAt + 8 * w, 8);
    return v;
  }
  void set_share(Word w, u64 v) const { std::memcpy(at + kSharesAt + 8 * w, &v, 8); }
};
using KeyIn = ReluKey<const uint8_t>;
using KeyOut = ReluKey<uint8_t>;

// The dealer's part for one chunk of m elements: DCF keys, then the shares.
void relu_gen_chunk(const u64* r_in, const u64* r_out, size_t m, Prg& rng, uint8_t* key0, uint8_t* key1) {
  const size_t kb = relu_key_bytes();
  std::vector<u64> alpha(m), beta(2 * m), value(KeyOut::kWords * m), rnd(KeyOut::kWords * m);
  for (size_t e = 0; e < m; ++e) {
    const u64 r = r_in[e], s = 1 ^ (r >> 63), sigma = 1 - 2 * s;  // sigma = +1 or -1
    alpha[e] = r & kLow63;
    beta[2 * e] = sigma;
    beta[2 * e + 1] = sigma * r;
    u64* v = &value[KeyOut::kWords * e];
    v[KeyOut::kS] = s;
    v[KeyOut::kSR] = s * r;
    v[KeyOut::kRin] = r;
    v[KeyOut::kRout] = r_out[e];
  }
  dcf_gen_strided(relu_dcf(), alpha.data(), beta.data(), m, rng, key0, key1, kb);
  rng.fill(rnd.data(), rnd.size());
  for (size_t e = 0; e < m; ++e) {
    const KeyOut k0{key0 + e * kb}, k1{key1 + e * kb};
    for (int j = 0; j < KeyOut::kWords; ++j) {
      const auto w = static_cast<KeyOut::Word>(j);
      const u64 a = rnd[KeyOut::kWords * e + j], v = value[KeyOut::kWords * e + j];
      k0.set_share(w, a);
      k1.set_share(w, v - a);
    }
  }
}

// Party b's output share for one element from its two DCF output words and its key.
inline u64 relu_combine(int b, u64 y, const u64 dcf[2], const KeyIn& k) {
  const u64 p = dcf[0] + k.share(KeyIn::kS);   // share of d = s xor c
  const u64 q = dcf[1] + k.share(KeyIn::kSR);  // share of d * r
  const u64 rout = k.share(KeyIn::kRout);
  if ((y >> 63) == 0) return y * p - q + rout;                  // sign = d: d*y - d*r
  const u64 y_once = b == 0 ? y : 0;                            // sign = 1 - d:
  return y_once - k.share(KeyIn::kRin) - y * p + q + rout;      // y - r - d*y + d*r
}

class ReluGate : public Gate {
 public:
  const char* name() const override { return "relu"; }
  size_t key_bytes() const override { return relu_key_bytes(); }
  int rounds() const override { return 1; }
  int64_t words_sent_per_element() const override { return 1; }

  void deal(const GateData&, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
            uint8_t* key1) const override {
    relu_gen(r_in, r_out, n, rng, key0, key1);
  }

  bool opens_once() const override { return true; }
  std::vector<u64> shares(Party p, const GateData&, const uint8_t* keys, const std::vector<u64>& x_hat,
                          int threads) const override {
    const size_t kb = relu_key_bytes();
    std::vector<u64> share(x_hat.size());
    parallel_for(int64_t(x_hat.size()), threads, [&](int64_t lo, int64_t hi) {
      relu_eval(static_cast<int>(p), keys + size_t(lo) * kb, x_hat.data() + lo, size_t(hi - lo), share.data() + lo);
    });
    return share;
  }

  void fixed_reference(const Step& s, const std::vector<int64_t>&, std::vector<int64_t>& wire, int) const override {
    for (int64_t i : s.live) wire[size_t(i)] = std::max<int64_t>(wire[size_t(i)], 0);
  }
  void real_reference(const Step& s, const std::vector<double>&, std::vector<double>& wire) const override {
    for (int64_t i : s.live) wire[size_t(i)] = std::max(wire[size_t(i)], 0.0);
  }
};

}  // namespace

size_t relu_key_bytes() { return relu_dcf().key_bytes + 8 * KeyIn::kWords; }

void relu_gen(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1) {
  const size_t kb = relu_key_bytes();
  for (size_t c0 = 0; c0 < n; c0 += kGenChunk) {
    const size_t m = std::min(kGenChunk, n - c0);
    relu_gen_chunk(r_in + c0, r_out + c0, m, rng, key0 + c0 * kb, key1 + c0 * kb);
  }
}

void relu_eval(int b, const uint8_t* keys, const u64* x_hat, size_t n, u64* share_out) {
  check_party("relu_eval", b);
  const DcfLayout& L = relu_dcf();
  const size_t kb = relu_key_bytes();
  std::vector<u64> ylow(std::min(n, kEvalChunk)), dcf(2 * std::min(n, kEvalChunk));
  for (size_t c0 = 0; c0 < n; c0 += kEvalChunk) {
    const size_t m = std::min(kEvalChunk, n - c0);
    for (size_t e = 0; e < m; ++e) ylow[e] = x_hat[c0 + e] & kLow63;
    dcf_eval_strided(b, L, keys + c0 * kb, kb, ylow.data(), m, dcf.data());
    for (size_t e = 0; e < m; ++e)
      share_out[c0 + e] = relu_combine(b, x_hat[c0 + e], &dcf[2 * e], KeyIn{keys + (c0 + e) * kb});
  }
}

const Gate& relu_gate() {
  static const ReluGate gate;
  return gate;
}

namespace {

// The ReLU gate on the differences of max pooling's pairs, under its own
// name: reports count these comparisons apart from the network's ReLUs.
class MaxGate final : public ReluGate {
 public:
  const char* name() const override { return "maxpool"; }
};

}  // namespace

const Gate& max_gate() {
  static const MaxGate gate;
  return gate;
}

}  // namespace dr::mpc
