// The ReLU gate of relu.h on the DCF of dcf.h. Implemented from Boyle et al.
// (eprint 2020/1392); docs/private_inference.md ("ReLU") derives the combination.
#include "mpc/gates/relu.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpc/dcf.h"
#include "mpc/linear.h"

namespace dr::mpc {

namespace {

constexpr int kReluWidth = 2;
// Elements per call: the dealer's buffers stay small; the evaluator hands the
// DCF this many elements, which it splits into its own chunks.
constexpr size_t kGenChunk = 512, kEvalChunk = 4096;

// The DCF of the gate on `bits`-bit inputs: on their low bits - 1 bits,
// every width's made once (immutable after init).
const DcfLayout& relu_dcf(int bits) {
  static const auto layouts = per_width<DcfLayout>([](int b) { return dcf_layout(b - 1, kReluWidth); });
  check_relu_width("ReLU gate", bits);
  return layouts[size_t(bits)];
}

// One element's key for one party: the DCF key (offset = its bytes: read
// once per call, not per word on the evaluation's hot path), then this
// party's shares of four words.
template <class Byte>
struct ReluKey : ShareWords<Byte> {
  enum Word { kS = 0, kSR = 1, kRin = 2, kRout = 3, kWords = 4 };  // s, s * r_in, r_in, r_out
};
using KeyIn = ReluKey<const uint8_t>;
using KeyOut = ReluKey<uint8_t>;

// The dealer's part for one chunk of m elements: DCF keys, then the shares.
void relu_gen_chunk(int bits, const u64* r_in, const u64* r_out, size_t m, Prg& rng, uint8_t* key0, uint8_t* key1) {
  const size_t kb = relu_key_bytes(bits), shares_at = relu_dcf(bits).key_bytes;
  std::vector<u64> alpha(m), beta(2 * m), value(KeyOut::kWords * m), rnd(KeyOut::kWords * m);
  for (size_t e = 0; e < m; ++e) {
    const u64 r = r_in[e], s = 1 ^ ((r >> (bits - 1)) & 1), sigma = 1 - 2 * s;  // sigma = +1 or -1
    alpha[e] = low_bits(r, bits - 1);
    beta[2 * e] = sigma;
    beta[2 * e + 1] = sigma * r;
    u64* v = &value[KeyOut::kWords * e];
    v[KeyOut::kS] = s;
    v[KeyOut::kSR] = s * r;
    v[KeyOut::kRin] = r;
    v[KeyOut::kRout] = r_out[e];
  }
  dcf_gen_strided(relu_dcf(bits), alpha.data(), beta.data(), m, rng, key0, key1, kb);
  rng.fill(rnd.data(), rnd.size());
  for (size_t e = 0; e < m; ++e) {
    const KeyOut k0{{key0 + e * kb, shares_at}}, k1{{key1 + e * kb, shares_at}};
    for (int j = 0; j < KeyOut::kWords; ++j) {
      const auto w = static_cast<KeyOut::Word>(j);
      const u64 a = rnd[KeyOut::kWords * e + j], v = value[KeyOut::kWords * e + j];
      k0.set_share(w, a);
      k1.set_share(w, v - a);
    }
  }
}

// Party b's output share for one element from its two DCF output words and
// its key; y_top is bit bits-1 of y.
inline u64 relu_combine(int b, u64 y, u64 y_top, const u64 dcf[2], const KeyIn& k) {
  const u64 p = dcf[0] + k.share(KeyIn::kS);   // share of d = s xor c
  const u64 q = dcf[1] + k.share(KeyIn::kSR);  // share of d * r
  const u64 rout = k.share(KeyIn::kRout);
  if (y_top == 0) return y * p - q + rout;                      // sign = d: d*y - d*r
  const u64 y_once = b == 0 ? y : 0;                            // sign = 1 - d:
  return y_once - k.share(KeyIn::kRin) - y * p + q + rout;      // y - r - d*y + d*r
}

class ReluGate : public ReluGateBase {
 public:
  using ReluGateBase::ReluGateBase;
  size_t key_bytes() const override { return relu_key_bytes(bits_); }
  int rounds() const override { return 1; }
  int64_t words_sent(int64_t elements) const override { return elements; }
  uint32_t key_format_version() const override { return bits_ == 64 ? 1 : 3; }

  void deal(const GateData&, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
            uint8_t* key1) const override {
    relu_gen(r_in, r_out, n, rng, key0, key1, bits_);
  }

  bool opens_once() const override { return true; }
  std::vector<u64> shares(Party p, const GateData&, const uint8_t* keys, const std::vector<u64>& x_hat,
                          int threads) const override {
    const size_t kb = key_bytes();
    std::vector<u64> share(x_hat.size());
    parallel_for(int64_t(x_hat.size()), threads, [&](int64_t lo, int64_t hi) {
      relu_eval(static_cast<int>(p), keys + size_t(lo) * kb, x_hat.data() + lo, size_t(hi - lo), share.data() + lo,
                bits_);
    });
    return share;
  }
};

const GateWidths<ReluGate>& gates() {
  static const GateWidths<ReluGate> table;
  return table;
}

}  // namespace

size_t relu_key_bytes(int bits) { return relu_dcf(bits).key_bytes + 8 * KeyIn::kWords; }

void relu_gen(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1, int bits) {
  const size_t kb = relu_key_bytes(bits);
  for (size_t c0 = 0; c0 < n; c0 += kGenChunk) {
    const size_t m = std::min(kGenChunk, n - c0);
    relu_gen_chunk(bits, r_in + c0, r_out + c0, m, rng, key0 + c0 * kb, key1 + c0 * kb);
  }
}

void relu_eval(int b, const uint8_t* keys, const u64* x_hat, size_t n, u64* share_out, int bits) {
  check_party("relu_eval", b);
  const DcfLayout& L = relu_dcf(bits);
  const size_t kb = relu_key_bytes(bits), shares_at = L.key_bytes;
  std::vector<u64> ylow(std::min(n, kEvalChunk)), dcf(2 * std::min(n, kEvalChunk));
  for (size_t c0 = 0; c0 < n; c0 += kEvalChunk) {
    const size_t m = std::min(kEvalChunk, n - c0);
    for (size_t e = 0; e < m; ++e) ylow[e] = low_bits(x_hat[c0 + e], bits - 1);
    dcf_eval_strided(b, L, keys + c0 * kb, kb, ylow.data(), m, dcf.data());
    for (size_t e = 0; e < m; ++e) {
      const u64 y = x_hat[c0 + e];
      const KeyIn k{{keys + (c0 + e) * kb, shares_at}};
      share_out[c0 + e] = relu_combine(b, y, (y >> (bits - 1)) & 1, &dcf[2 * e], k);
    }
  }
}

void ReluGateBase::fixed_reference(const Step& s, const std::vector<int64_t>&, std::vector<int64_t>& wire,
                                   int) const {
  for (int64_t i : s.live)
    if (!relu_positive(wire[size_t(i)], bits_)) wire[size_t(i)] = 0;
}

void ReluGateBase::real_reference(const Step& s, const std::vector<double>&, std::vector<double>& wire) const {
  for (int64_t i : s.live) wire[size_t(i)] = std::max(wire[size_t(i)], 0.0);
}

void check_relu_width(const char* gate, int bits) {
  if (bits < ReluGateChoice::kMinBits || bits > ReluGateChoice::kMaxBits)
    throw std::invalid_argument(std::string(gate) + ": width " + std::to_string(bits) + " outside " +
                                std::to_string(ReluGateChoice::kMinBits) + ".." +
                                std::to_string(ReluGateChoice::kMaxBits));
}

const Gate& relu_gate(int bits) { return gates().relu(bits); }
const Gate& max_gate(int bits) { return gates().max(bits); }

}  // namespace dr::mpc
