// The polynomial gate of poly.h. docs/private_inference.md ("Polynomial")
// derives the shares; the masked openings and the dealer are this runtime's
// (as for its linear layers), the truncation SecureML's.
#include "mpc/gates/poly.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpc/linear.h"
#include "mpc/protocol.h"
#include "mpc/reference.h"

namespace dr::mpc {

namespace {

// Elements per dealer call on its random words: its buffers stay small.
constexpr size_t kGenChunk = 4096;
// Rows of the parameter [3, C]: a, b, c; row k is quantised at (k + 1) * f.
constexpr int kRows = 3;
const char* const kRowName[kRows] = {"a", "b", "c"};

// One element's key for one party, a typed view over its bytes (Byte:
// uint8_t to write, const uint8_t to read).
template <class Byte>
struct PolyKey {
  enum Word { kU = 0, kV = 1, kW = 2, kK = 3, kRout = 4, kWords = 5 };  // r, r^2, alpha*u_c, K, r_out
  Byte* at;
  u64 get(Word w) const {
    u64 v;
    std::memcpy(&v, at + 8 * w, 8);
    return v;
  }
  void set(Word w, u64 v) const { std::memcpy(at + 8 * w, &v, 8); }
};
using KeyIn = PolyKey<const uint8_t>;
using KeyOut = PolyKey<uint8_t>;

std::string site_of(const Step& s) { return "polynomial site '" + s.name + "' (parameter '" + s.param + "')"; }

// A call's step and words, which this gate cannot do without.
const Step& step_of(const GateData& d, const char* call) {
  if (!d.step || !d.words)
    throw std::logic_error(std::string("poly gate: ") + call + " without its step and coefficient words");
  return *d.step;
}

size_t channel(const Step& s, size_t element) { return size_t(s.channel_of(s.live[element])); }

// The dealer's part for m elements: r_in and r_out split, and the shares of
// w = alpha*u_c and K = -alpha*v_c + beta*u_c with the channel's alpha, beta.
void deal_chunk(const Step& s, size_t first, const u64* session, const u64* r_in, const u64* r_out, size_t m,
                Prg& rng, uint8_t* key0, uint8_t* key1) {
  const size_t kb = poly_key_bytes(), C = size_t(s.channels);
  std::vector<u64> rnd(KeyOut::kWords * m);
  rng.fill(rnd.data(), rnd.size());
  for (size_t e = 0; e < m; ++e) {
    const size_t ch = channel(s, first + e);
    const u64 alpha = session[ch], beta = session[C + ch], r = r_in[e];
    const u64* server = &rnd[KeyOut::kWords * e];  // the server's shares: uniform
    const u64 u_c = r - server[KeyOut::kU], v_c = r * r - server[KeyOut::kV];
    const u64 value[KeyOut::kWords] = {r, r * r, alpha * u_c, beta * u_c - alpha * v_c, r_out[e]};
    const KeyOut k0{key0 + e * kb}, k1{key1 + e * kb};
    for (int j = 0; j < KeyOut::kWords; ++j) {
      const auto w = static_cast<KeyOut::Word>(j);
      k0.set(w, server[j]);
      k1.set(w, value[j] - server[j]);
    }
  }
}

// Party p's share of z = a*x^2 + b*x + c (scale 3f) for one element with
// x^ = y; (A, B) = (a, b) for the server, (a^, b^) for the client.
inline u64 share_of_z(Party p, u64 y, const KeyIn& k, const u64* words, size_t C, size_t ch) {
  const u64 A = words[ch], B = words[C + ch];
  const u64 u = k.get(KeyIn::kU), v = k.get(KeyIn::kV);
  u64 z = A * (v - 2 * y * u) - B * u + 2 * y * k.get(KeyIn::kW) + k.get(KeyIn::kK);
  if (p == Party::Server) z += (A * y + B) * y + words[2 * C + ch];  // a*y^2 + b*y + c: the server's alone
  return z;
}

// The exact z = a*x^2 + b*x + c of one element, refused (FixedPointOverflow)
// when a term or the sum reaches 2^62.
__int128 exact_z(int64_t a, int64_t b, int64_t c, int64_t x, const Step& s, size_t i) {
  const __int128 xx = __int128(x) * x;  // |x| < 2^62 upstream: below 2^124
  if (a != 0) check_fixed_range(xx, s, i, "squared input");  // then |a * xx| < 2^125
  const __int128 ax2 = a * xx, bx = __int128(b) * x, z = ax2 + bx + c;
  check_fixed_range(ax2, s, i, "a*x^2");
  check_fixed_range(bx, s, i, "b*x");
  check_fixed_range(z, s, i, "polynomial");
  return z;
}

class PolyGate final : public Gate {
 public:
  const char* name() const override { return "poly"; }
  size_t key_bytes() const override { return poly_key_bytes(); }
  int rounds() const override { return 1; }
  int64_t words_sent(int64_t elements) const override { return elements; }
  uint32_t key_format_version() const override { return 2; }

  int64_t param_count(const Step& s) const override { return kRows * s.channels; }
  int64_t session_words(const Step& s) const override { return 2 * s.channels; }  // alpha, beta
  int64_t setup_words(const Step& s) const override { return 2 * s.channels; }    // a^, b^

  std::vector<int64_t> quantise(const Step& s, const std::vector<double>& params, int f) const override {
    check_frac_bits(f);
    const size_t C = size_t(s.channels);
    if (params.size() != kRows * C)
      throw std::runtime_error(site_of(s) + ": " + std::to_string(params.size()) + " coefficients, the site needs " +
                               std::to_string(kRows * C) + " (3 x " + std::to_string(C) + ")");
    const double limit = poly_coefficient_limit(f);
    std::vector<int64_t> q(params.size());
    for (size_t k = 0; k < params.size(); ++k) {
      const int row = int(k / C);
      const double v = params[k];
      if (!std::isfinite(v) || std::fabs(v) >= limit)
        throw std::runtime_error(site_of(s) + ": coefficient " + kRowName[row] + " of channel " +
                                 std::to_string(k % C) + " = " + std::to_string(v) + " does not fit the ring at f = " +
                                 std::to_string(f) + " (accepted: |a|, |b|, |c| < 2^" + std::to_string(62 - 3 * f) +
                                 ", so that each term stays below 2^62 at scale 3f for |x| <= 1)");
      q[k] = std::llround(std::ldexp(v, (row + 1) * f));
    }
    return q;
  }

  std::vector<u64> setup(const Step& s, const std::vector<int64_t>& params, const u64* session) const override {
    const size_t C = size_t(s.channels);
    std::vector<u64> hat(2 * C);
    for (size_t k = 0; k < 2 * C; ++k) hat[k] = static_cast<u64>(params.at(k)) + session[k];  // a + alpha, b + beta
    return hat;
  }

  void deal(const GateData& d, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
            uint8_t* key1) const override {
    const Step& s = step_of(d, "deal");
    const size_t kb = poly_key_bytes();
    for (size_t c0 = 0; c0 < n; c0 += kGenChunk) {
      const size_t m = std::min(kGenChunk, n - c0);
      deal_chunk(s, d.first + c0, d.words, r_in + c0, r_out + c0, m, rng, key0 + c0 * kb, key1 + c0 * kb);
    }
  }

  bool opens_once() const override { return true; }
  std::vector<u64> shares(Party p, const GateData& d, const uint8_t* keys, const std::vector<u64>& x_hat,
                          int threads) const override {
    const Step& s = step_of(d, "evaluate");
    check_frac_bits(d.frac_bits);
    const size_t kb = poly_key_bytes(), C = size_t(s.channels);
    std::vector<u64> share(x_hat.size());
    parallel_for(int64_t(x_hat.size()), threads, [&](int64_t lo, int64_t hi) {
      for (size_t e = size_t(lo); e < size_t(hi); ++e) {
        const KeyIn k{keys + e * kb};
        // A batch's elements are several images' live elements, one image after another.
        const u64 z = share_of_z(p, x_hat[e], k, d.words, C, channel(s, (d.first + e) % size_t(s.live_count)));
        share[e] = truncate_share(p, z, 2 * d.frac_bits) + k.get(KeyIn::kRout);
      }
    });
    return share;
  }

  void fixed_reference(const Step& s, const std::vector<int64_t>& params, std::vector<int64_t>& wire,
                       int f) const override {
    const size_t C = size_t(s.channels);
    if (params.size() != kRows * C)
      throw std::logic_error(site_of(s) + ": the fixed-point reference has " + std::to_string(params.size()) +
                             " quantised coefficients, not " + std::to_string(kRows * C));
    for (int64_t i : s.live) {
      const size_t ch = size_t(s.channel_of(i));
      const __int128 z = exact_z(params[ch], params[C + ch], params[2 * C + ch], wire[size_t(i)], s, size_t(i));
      wire[size_t(i)] = static_cast<int64_t>(z >> (2 * f));  // floor(z / 2^2f)
    }
  }

  void real_reference(const Step& s, const std::vector<double>& params, std::vector<double>& wire) const override {
    const size_t C = size_t(s.channels);
    if (params.size() != kRows * C)
      throw std::logic_error(site_of(s) + ": the real reference has " + std::to_string(params.size()) +
                             " coefficients, not " + std::to_string(kRows * C));
    for (int64_t i : s.live) {
      const size_t ch = size_t(s.channel_of(i));
      const double x = wire[size_t(i)];
      wire[size_t(i)] = (params[ch] * x + params[C + ch]) * x + params[2 * C + ch];
    }
  }
};

}  // namespace

size_t poly_key_bytes() { return 8 * KeyIn::kWords; }

double poly_coefficient_limit(int frac_bits) { return std::ldexp(1.0, 62 - 3 * frac_bits); }

const Gate& poly_gate() {
  static const PolyGate gate;
  return gate;
}

}  // namespace dr::mpc
