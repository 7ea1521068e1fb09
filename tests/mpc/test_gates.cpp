// Tests of the gates of the private runtime (src/mpc/gate.h, src/mpc/gates/):
// the ReLU gate bit-exact on edge and random inputs and around its chunk
// sizes, one party's view uniform, several threads at once; the polynomial
// gate against the plaintext polynomial (edge and random inputs and masks,
// negative, zero and large coefficients, several channels), its truncation
// unbiased, its keys uniform, its coefficient limits; and, for every gate
// through the Gate interface, dealing and evaluating with an `open` that
// plays both parties, against the gate's own plaintext reference.
// Deterministic: every random choice comes from a fixed seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpc/dcf.h"
#include "fss_test_util.h"
#include "mpc/gate.h"
#include "mpc/gates/poly.h"
#include "mpc/gates/relu.h"
#include "mpc/gates/relu_dpf.h"
#include "mpc/reference.h"
#include "test_util.h"

using namespace dr::mpc;
using dr::mpc::test::bit_counts;
using dr::mpc::test::expect_balanced;
using dr::mpc::test::seeded;

namespace {

u64 relu_ref(u64 x) { return int64_t(x) >= 0 ? x : 0; }

}  // namespace

// ---------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------

namespace {

// relu(x) + r_out from both parties' shares, for each (x, r_in, r_out).
std::vector<u64> relu_open(const std::vector<u64>& x, const std::vector<u64>& r_in,
                           const std::vector<u64>& r_out, uint8_t seed) {
  const size_t n = x.size(), kb = relu_key_bytes();
  std::vector<uint8_t> k0(n * kb), k1(n * kb);
  Prg rng = seeded(seed);
  relu_gen(r_in.data(), r_out.data(), n, rng, k0.data(), k1.data());
  std::vector<u64> x_hat(n), s0(n), s1(n);
  for (size_t i = 0; i < n; ++i) x_hat[i] = x[i] + r_in[i];
  relu_eval(0, k0.data(), x_hat.data(), n, s0.data());
  relu_eval(1, k1.data(), x_hat.data(), n, s1.data());
  for (size_t i = 0; i < n; ++i) s0[i] += s1[i];
  return s0;
}

}  // namespace

TEST(Relu, KeyBytes) {
  EXPECT_EQ(relu_key_bytes(), dcf_key_bytes(63, 2) + 32);
  EXPECT_EQ(relu_key_bytes(), 2080u);
  EXPECT_LE(relu_key_bytes(), 2200u);
}

TEST(Relu, EdgeInputsAndMasks) {
  const u64 p62 = u64(1) << 62, p63 = u64(1) << 63;
  std::mt19937_64 rnd(1);
  std::vector<u64> xs = {0, 1, ~u64(0), 2, u64(-2), p62, u64(0) - p62, p62 - 1, u64(0) - p62 + 1,
                         p63 - 1, p63, p63 + 1};
  for (int i = 0; i < 8; ++i) xs.push_back(rnd());
  std::vector<u64> rs = {0, 1, p63, p63 - 1, p63 + 1, ~u64(0), p62, p63 | 12345};
  for (int i = 0; i < 8; ++i) rs.push_back(rnd());
  std::vector<u64> x, r_in, r_out;
  for (u64 xv : xs)
    for (u64 rv : rs)
      for (u64 ro : {u64(0), ~u64(0), u64(rnd())}) {
        x.push_back(xv);
        r_in.push_back(rv);
        r_out.push_back(ro);
      }
  auto got = relu_open(x, r_in, r_out, 70);
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(got[i], relu_ref(x[i]) + r_out[i]) << "x=" << int64_t(x[i]) << " r_in=" << r_in[i] << " r_out=" << r_out[i];
}

// Many random pairs, with x^ and r near the 2^63 boundaries where the carry c flips.
TEST(Relu, RandomPairs) {
  const size_t n = 100000;
  std::mt19937_64 rnd(2);
  std::vector<u64> x(n), r_in(n), r_out(n);
  for (size_t i = 0; i < n; ++i) {
    r_in[i] = rnd();
    r_out[i] = rnd();
    switch (i % 4) {
      case 0: x[i] = rnd(); break;
      case 1: x[i] = u64(int64_t(rnd()) >> (rnd() % 64)); break;   // small magnitudes, both signs
      case 2: x[i] = (u64(1) << 63) - r_in[i] + (rnd() % 5) - 2; break;  // x^ near 2^63
      default: x[i] = (r_in[i] & ((u64(1) << 63) - 1)) - r_in[i] + (rnd() % 5) - 2;  // x^low near r_low
    }
  }
  auto got = relu_open(x, r_in, r_out, 71);
  for (size_t i = 0; i < n; ++i)
    ASSERT_EQ(got[i], relu_ref(x[i]) + r_out[i]) << "x=" << int64_t(x[i]) << " r_in=" << r_in[i];
}

TEST(Relu, BatchSizesAroundTheChunk) {
  std::mt19937_64 rnd(3);
  // The DCF evaluates 64 elements at a time, generates 512, the gate hands it 4,096.
  for (size_t n : {0, 1, 63, 64, 65, 511, 512, 513, 4095, 4097}) {
    std::vector<u64> x(n), r_in(n), r_out(n);
    for (size_t i = 0; i < n; ++i) {
      x[i] = rnd();
      r_in[i] = rnd();
      r_out[i] = rnd();
    }
    auto got = relu_open(x, r_in, r_out, 72);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], relu_ref(x[i]) + r_out[i]) << "n=" << n << " i=" << i;
  }
}

// One party's key, and its output share, look uniform even for the most
// structured masks (r_in = r_out = 0) and a fixed input: a party learns nothing
// from what it holds. (The key never depends on x at all: relu_gen does not see it.)
TEST(Relu, OnePartyViewLooksUniform) {
  const size_t count = 4096, kb = relu_key_bytes();
  for (u64 r : {u64(0), u64(1) << 63}) {
    std::vector<u64> r_in(count, r), r_out(count, 0), x_hat(count, r + 5), share(count);
    std::vector<uint8_t> k0(count * kb), k1(count * kb);
    Prg rng = seeded(uint8_t(80 + (r >> 63)));
    relu_gen(r_in.data(), r_out.data(), count, rng, k0.data(), k1.data());
    for (int party = 0; party < 2; ++party) {
      const auto& k = party ? k1 : k0;
      const std::string who = "party " + std::to_string(party) + ", r_in " + std::to_string(r);
      expect_balanced(bit_counts(k.data(), count, kb, kb), count, who + " key");
      relu_eval(party, k.data(), x_hat.data(), count, share.data());
      expect_balanced(bit_counts(reinterpret_cast<const uint8_t*>(share.data()), count, 8, 8), count,
                      who + " output share");
    }
  }
}

TEST(Relu, RejectsBadParty) {
  std::vector<uint8_t> k(relu_key_bytes());
  u64 x = 0, out = 0;
  EXPECT_THROW(relu_eval(2, k.data(), &x, 1, &out), std::runtime_error);
}

// ---------------------------------------------------------------------------
// The two-round ReLU gate on a reduced width (gates/relu_dpf.h)
// ---------------------------------------------------------------------------

namespace {

// Both parties through both rounds: round 1's masked bits opened, round 2's
// shares summed; the bits each party sent are returned in `sent`.
std::vector<u64> relu_dpf_open(int bits, const std::vector<u64>& x, const std::vector<u64>& r_in,
                               const std::vector<u64>& r_out, uint8_t tag, std::vector<u64>* sent = nullptr) {
  const size_t n = x.size(), kb = relu_dpf_key_bytes(bits);
  std::vector<uint8_t> k0(n * kb), k1(n * kb);
  Prg rng = seeded(tag);
  relu_dpf_gen(bits, r_in.data(), r_out.data(), n, rng, k0.data(), k1.data());
  std::vector<u64> x_hat(n);
  for (size_t i = 0; i < n; ++i) x_hat[i] = x[i] + r_in[i];
  const std::vector<u64> w0 = relu_dpf_round1(0, bits, k0.data(), x_hat.data(), n),
                         w1 = relu_dpf_round1(1, bits, k1.data(), x_hat.data(), n);
  if (sent) *sent = w1;
  std::vector<u64> d_hat(w0.size());
  for (size_t i = 0; i < d_hat.size(); ++i) d_hat[i] = w0[i] + w1[i];
  std::vector<u64> s0(n), s1(n);
  relu_dpf_round2(0, bits, k0.data(), x_hat.data(), d_hat, n, s0.data());
  relu_dpf_round2(1, bits, k1.data(), x_hat.data(), d_hat, n, s1.data());
  for (size_t i = 0; i < n; ++i) s0[i] += s1[i];
  return s0;
}

// What the gates compute at width `bits`: x when the sign of its low bits says >= 0.
u64 relu_at_width(u64 x, int bits) { return relu_positive(int64_t(x), bits) ? x : 0; }

// The one-round gate on `bits` bits, both parties' shares summed.
std::vector<u64> relu_dcf_open(int bits, const std::vector<u64>& x, const std::vector<u64>& r_in,
                               const std::vector<u64>& r_out, uint8_t tag) {
  const size_t n = x.size(), kb = relu_key_bytes(bits);
  std::vector<uint8_t> k0(n * kb), k1(n * kb);
  Prg rng = seeded(tag);
  relu_gen(r_in.data(), r_out.data(), n, rng, k0.data(), k1.data(), bits);
  std::vector<u64> x_hat(n), s0(n), s1(n);
  for (size_t i = 0; i < n; ++i) x_hat[i] = x[i] + r_in[i];
  relu_eval(0, k0.data(), x_hat.data(), n, s0.data(), bits);
  relu_eval(1, k1.data(), x_hat.data(), n, s1.data(), bits);
  for (size_t i = 0; i < n; ++i) s0[i] += s1[i];
  return s0;
}

// Both reduced-width gates: the one-round DCF gate and the two-round DPF gate.
std::vector<u64> narrow_open(bool dpf, int bits, const std::vector<u64>& x, const std::vector<u64>& r_in,
                             const std::vector<u64>& r_out, uint8_t tag) {
  return dpf ? relu_dpf_open(bits, x, r_in, r_out, tag) : relu_dcf_open(bits, x, r_in, r_out, tag);
}

}  // namespace

TEST(ReluDpf, KeyBytesBeatLlamasTwoRoundGateAtThirtyTwoBits) {
  EXPECT_EQ(relu_dpf_key_bytes(32), 449u);  // LLAMA's two-round DPF gate at 32 bits: 473 (issue 20)
  EXPECT_EQ(relu_dpf_key_bytes(8), 16u * 2 + 33);
  EXPECT_EQ(relu_dpf_key_bytes(64), 16u * 58 + 33);
  EXPECT_THROW(relu_dpf_key_bytes(7), std::invalid_argument);
  EXPECT_THROW(relu_dpf_key_bytes(65), std::invalid_argument);
  const Gate& g = gate_of(GateKind::Relu, parse_relu_gate("dpf:32"));
  EXPECT_STREQ(g.name(), "relu");
  EXPECT_EQ(g.rounds(), 2);
  EXPECT_EQ(g.input_bits(), 32);
  EXPECT_EQ(g.words_sent(64), 64 + 2);  // 32 masked bits a word in round 1
  EXPECT_EQ(g.key_format_version(), 3u);
  EXPECT_STREQ(gate_of(GateKind::Max, parse_relu_gate("dpf:32")).name(), "maxpool");
}

TEST(ReluDcf, ReducedWidthKeyBytes) {
  EXPECT_EQ(relu_key_bytes(24), 800u);  // LLAMA's one-round gate at 32 bits: 813 (issue 20)
  EXPECT_EQ(relu_key_bytes(32), 1056u);
  EXPECT_EQ(relu_key_bytes(64), 2080u);
  EXPECT_THROW(relu_key_bytes(7), std::invalid_argument);
  const Gate& g = gate_of(GateKind::Relu, parse_relu_gate("dcf:24"));
  EXPECT_EQ(g.rounds(), 1);
  EXPECT_EQ(g.input_bits(), 24);
  EXPECT_EQ(g.key_format_version(), 3u);
  EXPECT_EQ(gate_of(GateKind::Relu).key_format_version(), 1u);
  EXPECT_EQ(relu_gate_name(parse_relu_gate("dcf:64")), "dcf");
  EXPECT_EQ(relu_gate_name(parse_relu_gate("dcf:24")), "dcf:24");
}

// Every input of the 8-bit range and beyond it, with every third mask's low
// byte, through both reduced-width gates.
TEST(ReluDpf, ExhaustiveAtEightBits) {
  std::mt19937_64 rnd(11);
  std::vector<u64> x, r_in, r_out;
  for (int64_t v = -300; v < 300; ++v)
    for (int r = 0; r < 256; r += 3) {
      x.push_back(u64(v));
      r_in.push_back((rnd() & ~u64(255)) | u64(r));
      r_out.push_back(rnd());
    }
  for (bool dpf : {true, false}) {
    const std::vector<u64> got = narrow_open(dpf, 8, x, r_in, r_out, 12);
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t v = int64_t(x[i]);
      ASSERT_EQ(got[i] - r_out[i], relu_at_width(x[i], 8)) << (dpf ? "dpf" : "dcf") << " x=" << v;
      if (v >= -128 && v < 128) {
        ASSERT_EQ(got[i] - r_out[i], u64(std::max<int64_t>(v, 0))) << "x=" << v;
      }
    }
  }
}

// Random inputs at the real widths, in range (exact ReLU) and out of range
// (the sign of the low bits, as the reference computes and counts it), with
// masks and inputs near the boundaries of the low bits; both reduced-width
// gates (at 64 bits the one-round gate is the default one).
TEST(ReluDpf, RandomInputsAtRealWidthsInAndOutOfRange) {
  std::mt19937_64 rnd(13);
  for (const auto& [dpf, bits] : {std::pair{true, 24}, {true, 32}, {true, 40}, {true, 64}, {false, 24}, {false, 32}}) {
    const size_t n = 20000;
    const u64 half = u64(1) << (bits - 1);
    std::vector<u64> x(n), r_in(n), r_out(n);
    for (size_t i = 0; i < n; ++i) {
      r_in[i] = rnd();
      r_out[i] = rnd();
      switch (i % 4) {
        case 0: x[i] = bits == 64 ? rnd() : (rnd() % (2 * half)) - half; break;  // in range
        case 1: x[i] = u64(int64_t(rnd()) >> (rnd() % 64)); break;                // any magnitude
        case 2: x[i] = half - 2 + rnd() % 4; if (rnd() & 1) x[i] = u64(0) - x[i]; break;  // at the edge
        default: x[i] = (r_in[i] & (half - 1)) - r_in[i] + (rnd() % 5) - 2;       // low bits of x^ near r's
      }
    }
    const std::vector<u64> got = narrow_open(dpf, bits, x, r_in, r_out, uint8_t(bits));
    int64_t outside = 0;
    for (size_t i = 0; i < n; ++i) {
      const int64_t v = int64_t(x[i]);
      const bool in_range = bits == 64 || (v >= -int64_t(half) && v < int64_t(half));
      outside += !in_range;
      ASSERT_EQ(got[i] - r_out[i], relu_at_width(x[i], bits)) << "bits=" << bits << " x=" << v;
      if (in_range) {
        ASSERT_EQ(got[i] - r_out[i], u64(std::max<int64_t>(v, 0))) << "bits=" << bits << " x=" << v;
      }
    }
    if (bits < 64) {
      EXPECT_GT(outside, 0) << bits;  // the out-of-range case was exercised
    }
  }
}

// One party's key, its round-1 bits and its round-2 shares look uniform for
// the most structured masks and a fixed input.
TEST(ReluDpf, OnePartyViewLooksUniform) {
  const int bits = 32;
  const size_t count = 4096, kb = relu_dpf_key_bytes(bits);
  for (u64 r : {u64(0), u64(1) << 31}) {
    std::vector<u64> r_in(count, r), r_out(count, 0), x_hat(count, r + 5);
    std::vector<uint8_t> k0(count * kb), k1(count * kb);
    Prg rng = seeded(uint8_t(90 + (r >> 31)));
    relu_dpf_gen(bits, r_in.data(), r_out.data(), count, rng, k0.data(), k1.data());
    for (int party = 0; party < 2; ++party) {
      const auto& k = party ? k1 : k0;
      const std::string who = "party " + std::to_string(party) + ", r_in " + std::to_string(r);
      std::vector<int> c = bit_counts(k.data(), count, kb, kb);
      c.resize(8 * (kb - 1) + 1);  // the last byte holds one bit
      expect_balanced(c, count, who + " key");
      const std::vector<u64> w = relu_dpf_round1(party, bits, k.data(), x_hat.data(), count);
      std::vector<int> even;
      const std::vector<int> wc = bit_counts(reinterpret_cast<const uint8_t*>(w.data()), w.size(), 8, 8);
      for (size_t b = 0; b < wc.size(); b += 2) even.push_back(wc[b]);
      expect_balanced(even, w.size(), who + " round-1 bits");
    }
  }
}

TEST(ReluDpf, RejectsBadPartyAndShortOpenings) {
  std::vector<uint8_t> k(relu_dpf_key_bytes(16));
  u64 x = 0, out = 0;
  EXPECT_THROW(relu_dpf_round1(2, 16, k.data(), &x, 1), std::runtime_error);
  EXPECT_THROW(relu_dpf_round2(0, 16, k.data(), &x, {}, 1, &out), std::runtime_error);
}

// ---------------------------------------------------------------------------
// Threads: each thread has its own AES context
// ---------------------------------------------------------------------------

TEST(Fss, EvaluationFromSeveralThreads) {
  const size_t n = 3000, kb = relu_key_bytes();
  std::mt19937_64 rnd(4);
  std::vector<u64> x(n), r_in(n), r_out(n), x_hat(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = rnd();
    r_in[i] = rnd();
    r_out[i] = rnd();
    x_hat[i] = x[i] + r_in[i];
  }
  std::vector<uint8_t> k0(n * kb), k1(n * kb);
  Prg rng = seeded(90);
  relu_gen(r_in.data(), r_out.data(), n, rng, k0.data(), k1.data());
  std::vector<u64> ref(n);
  relu_eval(0, k0.data(), x_hat.data(), n, ref.data());
  std::vector<std::vector<u64>> got(4, std::vector<u64>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] { relu_eval(0, k0.data(), x_hat.data(), n, got[t].data()); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(got[t], ref) << "thread " << t;
}

// ---------------------------------------------------------------------------
// Every gate through the Gate interface (gate.h)
// ---------------------------------------------------------------------------

namespace {

// Every gate without parameters, with each comparison: the one-round DCF
// gate, the two-round DPF gate at a width the test's inputs fit (32), at one
// most of them do not (16: the reference reads their sign as the protocol
// does), and max pooling's comparisons on it; the one-round gate on 24 and
// 16 bits.
struct GateCase {
  GateKind kind;
  ReluGateChoice comparison;
};
const GateCase kEveryGate[] = {{GateKind::Relu, {}},
                               {GateKind::Relu, parse_relu_gate("dpf:32")},
                               {GateKind::Relu, parse_relu_gate("dpf:16")},
                               {GateKind::Max, parse_relu_gate("dpf:24")},
                               {GateKind::Relu, parse_relu_gate("dcf:24")},
                               {GateKind::Max, parse_relu_gate("dcf:16")}};

// Plays `open` for both parties on two threads: each call deposits this
// party's shares of one round and returns their sum with the peer's.
class PairedOpen {
 public:
  std::vector<u64> open(int party, const std::vector<u64>& mine) {
    std::unique_lock<std::mutex> lock(m_);
    const size_t round = sent_[party].size();
    sent_[party].push_back(mine);
    cv_.notify_all();
    cv_.wait(lock, [&] { return sent_[1 - party].size() > round; });
    std::vector<u64> sum = mine;
    const std::vector<u64>& peer = sent_[1 - party][round];
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += peer[i];
    return sum;
  }
  size_t rounds(int party) const { return sent_[party].size(); }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::vector<u64>> sent_[2];
};

}  // namespace

TEST(Gates, RegistryDescribesEachGate) {
  const Gate& relu = gate_of(GateKind::Relu);
  EXPECT_STREQ(relu.name(), "relu");
  EXPECT_EQ(relu.key_bytes(), relu_key_bytes());
  EXPECT_EQ(relu.rounds(), 1);
  EXPECT_EQ(relu.words_sent(7), 7);
  Step s;
  s.kind = StepKind::Gate;
  EXPECT_STREQ(kind_name(s), "relu");
  s.kind = StepKind::SumPool;
  EXPECT_STREQ(kind_name(s), "sumpool");
}

// Deal, then both parties evaluate at once: each gets the same opened
// g(x) + r_out on the live elements, equal to the gate's fixed-point
// reference, in the number of rounds the gate states.
TEST(Gates, EvaluationMatchesTheFixedPointReference) {
  const int f = 12;
  std::mt19937_64 rnd(5);
  for (const auto [kind, comparison] : kEveryGate) {
    const Gate& gate = gate_of(kind, comparison);
    Step s;
    s.kind = StepKind::Gate;
    s.gate = kind;
    s.comparison = comparison;
    const size_t wire = 600;
    for (size_t i = 0; i < wire; i += 1 + rnd() % 3) s.live.push_back(int64_t(i));
    s.live_count = int64_t(s.live.size());
    const size_t n = s.live.size();
    std::vector<int64_t> x(wire);
    for (auto& v : x) v = int64_t(rnd() % (u64(1) << 24)) - (int64_t(1) << 23);  // +-2^11 at f = 12
    x[0] = 0, x[1] = -1, x[3] = 1;
    std::vector<u64> r_in(n), r_out(n), x_hat(n);
    for (size_t j = 0; j < n; ++j) {
      r_in[j] = rnd();
      r_out[j] = rnd();
      x_hat[j] = u64(x[size_t(s.live[j])]) + r_in[j];
    }
    std::vector<uint8_t> k0(n * gate.key_bytes()), k1(n * gate.key_bytes());
    Prg rng = seeded(95);
    gate.deal(r_in.data(), r_out.data(), n, rng, k0.data(), k1.data());

    PairedOpen paired;
    std::vector<u64> got[2];
    std::thread client([&] {
      got[1] = gate.evaluate(Party::Client, k1.data(), x_hat,
                             [&](const std::vector<u64>& v) { return paired.open(1, v); }, 2);
    });
    got[0] = gate.evaluate(Party::Server, k0.data(), x_hat,
                           [&](const std::vector<u64>& v) { return paired.open(0, v); }, 3);
    client.join();

    std::vector<int64_t> ref = x;
    gate.fixed_reference(s, ref, f);
    std::vector<double> real(x.begin(), x.end());
    gate.real_reference(s, real);
    EXPECT_EQ(got[0], got[1]) << gate.name();
    EXPECT_EQ(paired.rounds(0), size_t(gate.rounds())) << gate.name();
    ASSERT_EQ(got[0].size(), n);
    const int64_t outside = gate_input_range(s, x).out_of_range;
    EXPECT_EQ(outside > 0, comparison.bits < 24) << relu_gate_name(comparison);
    for (size_t j = 0; j < n; ++j) {
      const size_t i = size_t(s.live[j]);
      ASSERT_EQ(got[0][j] - r_out[j], u64(ref[i])) << gate.name() << " element " << i << " x = " << x[i];
      const int64_t limit = int64_t(1) << (comparison.bits - 1);
      if (comparison.bits == 64 || (x[i] >= -limit && x[i] < limit)) {
        EXPECT_NEAR(real[i], double(ref[i]), 1.0) << gate.name() << " element " << i;
      }
    }
    for (size_t i = 0; i < wire; ++i) {  // off the live elements the references pass x through
      if (!std::binary_search(s.live.begin(), s.live.end(), int64_t(i))) {
        ASSERT_EQ(ref[i], x[i]) << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Gates with parameters (the polynomial gate), through the Gate interface
// ---------------------------------------------------------------------------

namespace {

// A gate step over a wire of `channels` x `plane` elements, live at `live`.
Step gate_step(GateKind kind, int64_t channels, int64_t plane, std::vector<int64_t> live) {
  Step s;
  s.kind = StepKind::Gate;
  s.gate = kind;
  s.name = "site";
  s.param = "site.poly";
  s.channels = channels;
  s.plane = plane;
  s.live = std::move(live);
  s.live_count = int64_t(s.live.size());
  return s;
}

// What one private evaluation of a step opened, both parties' views.
struct Opened {
  std::vector<u64> value[2];  // g(x) + r_out as each party opened it
  std::vector<u64> r_out;
  size_t rounds = 0;
};

// The whole life of a gate step as the runtime lives it: the dealer draws
// the session words and deals (in two calls, as two threads would), the
// server makes the setup words from its quantised parameters, then both
// parties evaluate at once over PairedOpen.
Opened run_gate(const Gate& gate, const Step& s, const std::vector<int64_t>& params, const std::vector<u64>& x_hat,
                const std::vector<u64>& r_in, int f, uint8_t seed) {
  const size_t n = s.live.size(), kb = gate.key_bytes();
  Prg rng = seeded(seed);
  std::vector<u64> session(size_t(gate.session_words(s)));
  rng.fill(session.data(), session.size());
  Opened o;
  o.r_out.resize(n);
  rng.fill(o.r_out.data(), n);
  std::vector<uint8_t> k0(n * kb), k1(n * kb);
  const size_t half = n / 2;
  gate.deal(GateData{&s, 0, session.data(), 0}, r_in.data(), o.r_out.data(), half, rng, k0.data(), k1.data());
  gate.deal(GateData{&s, half, session.data(), 0}, r_in.data() + half, o.r_out.data() + half, n - half, rng,
            k0.data() + half * kb, k1.data() + half * kb);
  const std::vector<u64> server_words(params.begin(), params.end());
  const std::vector<u64> client_words = gate.setup(s, params, session.data());
  EXPECT_EQ(client_words.size(), size_t(gate.setup_words(s))) << gate.name();
  PairedOpen paired;
  std::thread client([&] {
    o.value[1] = gate.evaluate(Party::Client, GateData{&s, 0, client_words.data(), f}, k1.data(), x_hat,
                               [&](const std::vector<u64>& v) { return paired.open(1, v); }, 2);
  });
  o.value[0] = gate.evaluate(Party::Server, GateData{&s, 0, server_words.data(), f}, k0.data(), x_hat,
                             [&](const std::vector<u64>& v) { return paired.open(0, v); }, 3);
  client.join();
  o.rounds = paired.rounds(0);
  return o;
}

// [3, C] coefficients, row-major (a, b, c per channel).
std::vector<double> coefficients(const std::vector<std::array<double, 3>>& per_channel) {
  const size_t C = per_channel.size();
  std::vector<double> v(3 * C);
  for (size_t c = 0; c < C; ++c)
    for (size_t r = 0; r < 3; ++r) v[r * C + c] = per_channel[c][r];
  return v;
}

}  // namespace

// Every gate, its parameters (if any) quantised by the gate and set up as
// the server does: both parties open the same value, in the gate's rounds,
// equal to the gate's fixed-point reference up to its last place.
TEST(Gates, EveryGateWithItsParametersMatchesItsReference) {
  const int f = 12;
  std::mt19937_64 rnd(6);
  for (GateKind kind : {GateKind::Relu, GateKind::Poly}) {
    const Gate& gate = gate_of(kind);
    std::vector<int64_t> live;
    for (int64_t i = 0; i < 4 * 60; i += 1 + int64_t(rnd() % 3)) live.push_back(i);
    const Step s = gate_step(kind, 4, 60, live);
    std::vector<double> real_params(size_t(gate.param_count(s)));
    for (double& v : real_params) v = double(int64_t(rnd() % 2001) - 1000) / 500.0;  // [-2, 2]
    const std::vector<int64_t> params = gate.quantise(s, real_params, f);
    ASSERT_EQ(params.size(), real_params.size()) << gate.name();
    std::vector<int64_t> x(4 * 60);
    for (auto& v : x) v = int64_t(rnd() % (u64(1) << 16)) - (int64_t(1) << 15);  // +-8 at f = 12
    std::vector<u64> r_in(live.size()), x_hat(live.size());
    for (size_t j = 0; j < live.size(); ++j) r_in[j] = rnd(), x_hat[j] = u64(x[size_t(live[j])]) + r_in[j];
    const Opened o = run_gate(gate, s, params, x_hat, r_in, f, 96);
    std::vector<int64_t> ref = x;
    gate.fixed_reference(s, params, ref, f);
    std::vector<double> real(x.size());
    for (size_t i = 0; i < x.size(); ++i) real[i] = std::ldexp(double(x[i]), -f);
    gate.real_reference(s, real_params, real);
    EXPECT_EQ(o.value[0], o.value[1]) << gate.name();
    EXPECT_EQ(o.rounds, size_t(gate.rounds())) << gate.name();
    const int64_t last_place = kind == GateKind::Poly ? 1 : 0;  // the polynomial gate truncates, the ReLU is exact
    for (size_t j = 0; j < live.size(); ++j) {
      const size_t i = size_t(live[j]);
      const int64_t above = int64_t(o.value[0][j] - o.r_out[j]) - ref[i];
      ASSERT_TRUE(above >= 0 && above <= last_place) << gate.name() << " element " << i << ": " << above;
      EXPECT_NEAR(real[i], std::ldexp(double(ref[i]), -f), 0.01) << gate.name() << " element " << i;
    }
  }
}

TEST(Poly, DescribesItself) {
  const Gate& poly = gate_of(GateKind::Poly);
  const Step s = gate_step(GateKind::Poly, 5, 16, {0, 1});
  EXPECT_STREQ(poly.name(), "poly");
  EXPECT_EQ(poly.key_bytes(), poly_key_bytes());
  EXPECT_EQ(poly_key_bytes(), 40u);  // u, v, alpha*u_c, K, r_out: five words
  EXPECT_EQ(poly.rounds(), 1);
  EXPECT_EQ(poly.words_sent(7), 7);
  EXPECT_EQ(poly.key_format_version(), 2u);
  EXPECT_EQ(poly.param_count(s), 15);   // a, b, c per channel
  EXPECT_EQ(poly.session_words(s), 10);  // alpha, beta per channel
  EXPECT_EQ(poly.setup_words(s), 10);    // a^, b^ per channel (c stays with the server)
  EXPECT_STREQ(kind_name(s), "poly");
  const Gate& relu = gate_of(GateKind::Relu);  // the ReLU gate has no parameters
  EXPECT_EQ(relu.param_count(s), 0);
  EXPECT_EQ(relu.session_words(s), 0);
  EXPECT_EQ(relu.setup_words(s), 0);
  EXPECT_EQ(relu.key_format_version(), 1u);
}

// Coefficients quantised at f, 2f and 3f; the setup words are a + alpha and
// b + beta, never c.
TEST(Poly, QuantisesAtThreeScalesAndSetsUpMaskedCoefficients) {
  const Gate& poly = gate_of(GateKind::Poly);
  const Step s = gate_step(GateKind::Poly, 2, 4, {});
  const std::vector<int64_t> q = poly.quantise(s, coefficients({{0.25, -0.5, 0.125}, {-1.0, 2.0, -3.0}}), 12);
  EXPECT_EQ(q, (std::vector<int64_t>{1024, -4096, int64_t(-0.5 * (1 << 24)), 2 << 24, int64_t(1) << 33,
                                     -(int64_t(3) << 36)}));
  const std::vector<u64> session = {1, 2, 3, ~u64(0)};
  EXPECT_EQ(poly.setup(s, q, session.data()),
            (std::vector<u64>{1025, u64(-4096) + 2, u64(-(int64_t(1) << 23)) + 3, u64(2 << 24) - 1}));
}

TEST(Poly, RefusesCoefficientsTheRingCannotHold) {
  const Gate& poly = gate_of(GateKind::Poly);
  Step s = gate_step(GateKind::Poly, 2, 4, {});
  s.name = "layer1.0.relu";
  s.param = "layer1.0.relu.poly";
  EXPECT_EQ(poly_coefficient_limit(12), std::ldexp(1.0, 26));
  EXPECT_EQ(poly_coefficient_limit(16), std::ldexp(1.0, 14));
  const double below = std::ldexp(1.0, 26) - 1;
  EXPECT_NO_THROW(poly.quantise(s, coefficients({{below, -below, below}, {0, 0, -below}}), 12));
  for (double bad : {std::ldexp(1.0, 26), -std::ldexp(1.0, 30), std::nan(""), HUGE_VAL}) {
    const std::vector<double> v = coefficients({{0.2, 0.5, 0.2}, {0.2, bad, 0.2}});
    const std::string m = dr::test::message_of<std::runtime_error>([&] { poly.quantise(s, v, 12); });
    EXPECT_TRUE(dr::test::contains(m, "polynomial site 'layer1.0.relu' (parameter 'layer1.0.relu.poly')")) << m;
    EXPECT_TRUE(dr::test::contains(m, "coefficient b of channel 1")) << m;
    EXPECT_TRUE(dr::test::contains(m, "accepted: |a|, |b|, |c| < 2^26")) << m;
  }
  const std::string m16 = dr::test::message_of<std::runtime_error>(
      [&] { poly.quantise(s, coefficients({{0.2, 0.5, 0.2}, {0.2, 0.5, 20000.0}}), 16); });
  EXPECT_TRUE(dr::test::contains(m16, "coefficient c of channel 1")) << m16;
  EXPECT_TRUE(dr::test::contains(m16, "< 2^14")) << m16;
  const std::string wrong =
      dr::test::message_of<std::runtime_error>([&] { poly.quantise(s, std::vector<double>(5, 0.1), 12); });
  EXPECT_TRUE(dr::test::contains(wrong, "5 coefficients, the site needs 6 (3 x 2)")) << wrong;
}

// Several channels with typical, negative, zero and large coefficients;
// inputs at zero, one unit, the largest magnitudes of |x| < 2^7 and random;
// masks at zero, 2^63, -1 and random: every element opens the polynomial of
// its own channel, the reference's floor or one more, and the real
// polynomial within the coefficients' rounding.
TEST(Poly, OpensThePlaintextPolynomialOnEdgeAndRandomInputs) {
  const int f = 12;
  const Gate& poly = gate_of(GateKind::Poly);
  const std::vector<std::array<double, 3>> abc = {
      {0.2, 0.5, 0.2}, {-0.3, -1.25, -0.7}, {0, 0, 0}, {0, 1, 0}, {0.05, -20.0, 100.0}, {-0.01, 0.002, -12.5}};
  const int64_t C = int64_t(abc.size()), plane = 64;
  const std::vector<double> real_params = coefficients(abc);
  std::mt19937_64 rnd(7);
  const int64_t big = (int64_t(1) << (7 + f)) - 1;  // |x| < 2^7
  std::vector<int64_t> x(size_t(C * plane)), live;
  for (int64_t i = 0; i < C * plane; ++i) {
    const int64_t k = i % plane;
    const int64_t edge[] = {0, 1, -1, 1 << f, -(1 << f), big, -big, big / 3};
    x[size_t(i)] = k < 8 ? edge[k] : int64_t(rnd() % u64(2 * big + 1)) - big;
    live.push_back(i);
  }
  const Step s = gate_step(GateKind::Poly, C, plane, live);
  const std::vector<int64_t> params = poly.quantise(s, real_params, f);
  std::vector<u64> r_in(live.size()), x_hat(live.size());
  const u64 masks[] = {0, u64(1) << 63, ~u64(0), 1};
  for (size_t j = 0; j < live.size(); ++j) {
    r_in[j] = j % 16 < 4 ? masks[j % 4] : rnd();
    x_hat[j] = u64(x[j]) + r_in[j];
  }
  const Opened o = run_gate(poly, s, params, x_hat, r_in, f, 97);
  EXPECT_EQ(o.value[0], o.value[1]);
  std::vector<int64_t> ref = x;
  poly.fixed_reference(s, params, ref, f);
  int64_t above = 0;
  for (size_t j = 0; j < live.size(); ++j) {
    const int64_t got = int64_t(o.value[0][j] - o.r_out[j]);
    ASSERT_TRUE(got == ref[j] || got == ref[j] + 1) << "element " << j << ": " << got << " vs " << ref[j];
    above += got - ref[j];
    const auto& [a, b, c] = abc[size_t(j) / size_t(plane)];
    const double xr = std::ldexp(double(x[j]), -f), want = (a * xr + b) * xr + c;
    const double rounding =  // the coefficients' quantisation, then the floor and the last place
        std::ldexp(xr * xr, -(f + 1)) + std::ldexp(std::fabs(xr), -(2 * f + 1)) + std::ldexp(2.0, -f);
    EXPECT_NEAR(std::ldexp(double(got), -f), want, rounding) << "element " << j << " x = " << xr;
  }
  EXPECT_GT(above, 0);  // the truncation's last place shows up
  EXPECT_LT(above, int64_t(live.size()));
}

// The truncation rounds up with the probability of the fractional part
// (SecureML): for a value z = 2^2f * Z + zeta, trunc(z) is Z + 1 with
// probability zeta / 2^2f, so its mean is z / 2^2f.
TEST(Poly, TruncationIsUnbiased) {
  const int f = 12;
  const Gate& poly = gate_of(GateKind::Poly);
  const size_t n = 20000;
  std::vector<int64_t> live(n);
  for (size_t i = 0; i < n; ++i) live[i] = int64_t(i);
  const Step s = gate_step(GateKind::Poly, 1, int64_t(n), live);
  // x = 1.5, y = 0.25*x^2 + 0*x + c: z = 0.5625 + c, at scale 3f.
  const double c = std::ldexp(0.3, -f);  // 0.3 of the output's last place on top of 0.5625 (exact)
  const std::vector<int64_t> params = poly.quantise(s, {0.25, 0.0, c}, f);
  std::mt19937_64 rnd(8);
  std::vector<u64> r_in(n), x_hat(n);
  for (size_t j = 0; j < n; ++j) r_in[j] = rnd(), x_hat[j] = u64(int64_t(1.5 * (1 << f))) + r_in[j];
  const Opened o = run_gate(poly, s, params, x_hat, r_in, f, 98);
  std::vector<int64_t> ref(n, int64_t(1.5 * (1 << f)));
  poly.fixed_reference(s, params, ref, f);
  const double zeta = std::ldexp(double(params[2] % (int64_t(1) << (2 * f))), -2 * f);
  double ups = 0;
  for (size_t j = 0; j < n; ++j) ups += double(int64_t(o.value[0][j] - o.r_out[j]) - ref[j]);
  EXPECT_NEAR(zeta, 0.3, 1e-3);
  EXPECT_NEAR(ups / double(n), zeta, 0.02);  // sd 0.0032
}

// Each party's key, and its output share, look uniform even for zero masks,
// zero session masks and a fixed input: a party learns nothing from what it
// holds (the keys never depend on x, the coefficients or the other party's words).
TEST(Poly, OnePartyViewLooksUniform) {
  const Gate& poly = gate_of(GateKind::Poly);
  const size_t count = 4096, kb = poly_key_bytes();
  std::vector<int64_t> live(count);
  for (size_t i = 0; i < count; ++i) live[i] = int64_t(i);
  const Step s = gate_step(GateKind::Poly, 2, int64_t(count / 2), live);
  const std::vector<int64_t> params = poly.quantise(s, coefficients({{0.2, 0.5, 0.2}, {-1, 0, 3}}), 12);
  for (u64 r : {u64(0), u64(1) << 63}) {
    std::vector<u64> r_in(count, r), r_out(count, 0), session(4, 0), x_hat(count, r + 5);
    std::vector<uint8_t> k0(count * kb), k1(count * kb);
    Prg rng = seeded(uint8_t(110 + (r >> 63)));
    poly.deal(GateData{&s, 0, session.data(), 0}, r_in.data(), r_out.data(), count, rng, k0.data(), k1.data());
    const std::vector<u64> server_words(params.begin(), params.end());
    const std::vector<u64> client_words = poly.setup(s, params, session.data());
    for (int party = 0; party < 2; ++party) {
      const auto& k = party ? k1 : k0;
      const std::string who = "party " + std::to_string(party) + ", r_in " + std::to_string(r);
      expect_balanced(bit_counts(k.data(), count, kb, kb), count, who + " key");
      const GateData data{&s, 0, party ? client_words.data() : server_words.data(), 12};
      std::vector<u64> share;
      poly.evaluate(party ? Party::Client : Party::Server, data, k.data(), x_hat,
                    [&](const std::vector<u64>& v) { return share = v; }, 1);
      expect_balanced(bit_counts(reinterpret_cast<const uint8_t*>(share.data()), count, 8, 8), count,
                      who + " output share");
    }
  }
}

TEST(Poly, FixedReferenceRefusesOverflowAndMissingCoefficients) {
  const Gate& poly = gate_of(GateKind::Poly);
  const Step s = gate_step(GateKind::Poly, 1, 2, {1});
  const std::vector<int64_t> params = poly.quantise(s, {1.0, 0.0, 0.0}, 12);
  std::vector<int64_t> wire = {0, int64_t(1) << 26};  // x = 2^14, x^2 = 2^28 real: z = 2^64 at scale 3f
  const std::string m = dr::test::message_of<FixedPointOverflow>([&] { poly.fixed_reference(s, params, wire, 12); });
  EXPECT_TRUE(dr::test::contains(m, "fixed-point overflow at poly 'site', element 1")) << m;
  wire = {0, int64_t(1) << 20};  // x = 2^8: z = 2^52, fine
  poly.fixed_reference(s, params, wire, 12);
  EXPECT_EQ(wire[1], int64_t(1) << 28);
  EXPECT_THROW(poly.fixed_reference(s, {}, wire, 12), std::logic_error);
  std::vector<u64> none;
  EXPECT_THROW(poly.evaluate(Party::Server, GateData{}, nullptr, none, [](const std::vector<u64>& v) { return v; }, 1),
               std::logic_error);
}
