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
// Key of one element for one party (relu_key_bytes() = 2,080 bytes at 64 bits), read and
// written through the typed view ReluKey in relu.cpp:
//   [0, 2048)     DCF key, n = 63, width 2, alpha = r_in mod 2^63,
//                 beta = (sigma, sigma * r_in), s = 1 xor MSB(r_in), sigma = 1 - 2s
//   [2048, 2080)  this party's additive shares of s, s * r_in, r_in, r_out
//                 (uniformly random share for party 0, value minus it for party 1)
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "mpc/gate.h"

namespace dr::mpc {

// On a reduced width (`--relu-gate dcf:N`, `bits` = N < 64) the same gate
// reads only the low N bits of x^: a DCF on N - 1 bits (32 N + 32 key
// bytes: 800 at N = 24, 1,056 at N = 32), with bit N-1 in the place of bit
// 63 in the derivation; exact for -2^(N-1) <= x < 2^(N-1), and for any other
// x the sign of its low N bits (relu_positive), which the plaintext
// references compute and count (Gate::input_bits).
size_t relu_key_bytes(int bits = 64);
// Dealer: keys for n elements; key0/key1 receive n * relu_key_bytes(bits) bytes each.
void relu_gen(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1, int bits = 64);
// Party b: share_out[i] = its share of relu(x_i) + r_out_i, from x_hat[i] = x_i + r_in_i.
void relu_eval(int b, const uint8_t* keys, const u64* x_hat, size_t n, u64* share_out, int bits = 64);
// The sign test of a gate on `bits` bits: x >= 0 as its low `bits` bits read
// (both ReLU gates, relu_dpf.h too).
inline bool relu_positive(int64_t x, int bits) {
  return bits >= 64 ? x >= 0 : ((uint64_t(x) >> (bits - 1)) & 1) == 0;
}

// What both ReLU gates (this one and relu_dpf.h's) share.
//
// Their widths: refuses (std::invalid_argument naming `gate`) bits outside
// ReluGateChoice::kMinBits..kMaxBits; v's low `bits` bits (all of v at 64);
// one T per width, made once by make(bits).
void check_relu_width(const char* gate, int bits);
inline u64 low_bits(u64 v, int bits) { return bits >= 64 ? v : v & ((u64(1) << bits) - 1); }
template <class T, class Make>
std::array<T, ReluGateChoice::kMaxBits + 1> per_width(Make make) {
  std::array<T, ReluGateChoice::kMaxBits + 1> a{};
  for (int b = ReluGateChoice::kMinBits; b <= ReluGateChoice::kMaxBits; ++b) a[size_t(b)] = make(b);
  return a;
}

// An element's key: its FSS key (`offset` bytes), then this party's additive
// shares, 8 bytes each, little-endian (Byte: uint8_t to write, const uint8_t
// to read). Each gate names its words.
template <class Byte>
struct ShareWords {
  Byte* at;
  size_t offset;
  u64 share(int w) const {
    u64 v;
    std::memcpy(&v, at + offset + 8 * size_t(w), 8);
    return v;
  }
  void set_share(int w, u64 v) const { std::memcpy(at + offset + 8 * size_t(w), &v, 8); }
};

// A width, a name ("relu", or "maxpool" on max pooling's differences:
// reports count those comparisons apart from the network's ReLUs) and the
// references, which read the sign of the low bits as the protocol does.
class ReluGateBase : public Gate {
 public:
  ReluGateBase(int bits, const char* name) : bits_(bits), name_(name) {}
  const char* name() const override { return name_; }
  int input_bits() const override { return bits_; }
  void fixed_reference(const Step& s, const std::vector<int64_t>& params, std::vector<int64_t>& wire,
                       int frac_bits) const override;
  void real_reference(const Step& s, const std::vector<double>& params, std::vector<double>& wire) const override;

 protected:
  int bits_;
  const char* name_;
};

// Every width's gate of one construction G (a ReluGateBase made from a
// width and a name), under both names, made once (thread-safe static init).
template <class G>
class GateWidths {
 public:
  const Gate& relu(int bits) const { return *relu_[checked(bits)]; }
  const Gate& max(int bits) const { return *max_[checked(bits)]; }

 private:
  static size_t checked(int bits) {
    check_relu_width("ReLU gate", bits);
    return size_t(bits);
  }
  std::array<std::unique_ptr<G>, ReluGateChoice::kMaxBits + 1> relu_ =
      per_width<std::unique_ptr<G>>([](int b) { return std::make_unique<G>(b, "relu"); });
  std::array<std::unique_ptr<G>, ReluGateChoice::kMaxBits + 1> max_ =
      per_width<std::unique_ptr<G>>([](int b) { return std::make_unique<G>(b, "maxpool"); });
};

// The gate (gate.h) over the functions above: one round, one word per
// element each way; bits in ReluGateChoice::kMinBits..kMaxBits, else
// std::invalid_argument.
const Gate& relu_gate(int bits = 64);
// The same gate on the pairwise differences of a max pooling (program.h:
// max(a, b) = b + relu(a - b)), named "maxpool": its comparisons are not the
// network's ReLUs in any report, but cost what a ReLU costs.
const Gate& max_gate(int bits = 64);

}  // namespace dr::mpc
