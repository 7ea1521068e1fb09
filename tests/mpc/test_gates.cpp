// Tests of the gates of the private runtime (src/mpc/gate.h, src/mpc/gates/):
// the ReLU gate bit-exact on edge and random inputs and around its chunk
// sizes, one party's view uniform, several threads at once; and, for every
// gate through the Gate interface, dealing and evaluating with an `open`
// that plays both parties, against the gate's own plaintext reference.
// Deterministic: every random choice comes from a fixed seed.
#include <gtest/gtest.h>

#include <algorithm>
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
#include "mpc/gates/relu.h"

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

const GateKind kEveryGate[] = {GateKind::Relu};

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
  EXPECT_EQ(relu.words_sent_per_element(), 1);
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
  for (GateKind kind : kEveryGate) {
    const Gate& gate = gate_of(kind);
    Step s;
    s.kind = StepKind::Gate;
    s.gate = kind;
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
    for (size_t j = 0; j < n; ++j) {
      const size_t i = size_t(s.live[j]);
      ASSERT_EQ(got[0][j] - r_out[j], u64(ref[i])) << gate.name() << " element " << i << " x = " << x[i];
      EXPECT_NEAR(real[i], double(ref[i]), 1.0) << gate.name() << " element " << i;
    }
    for (size_t i = 0; i < wire; ++i) {  // off the live elements the references pass x through
      if (!std::binary_search(s.live.begin(), s.live.end(), int64_t(i))) {
        ASSERT_EQ(ref[i], x[i]) << i;
      }
    }
  }
}
