// Tests of the DPF comparison (src/mpc/dpf.h): exhaustive over every alpha
// and x at n = 8 and at the smallest domain (n = 7, the leaf block alone),
// random at every width up to 63 with the inputs around alpha, refused
// inputs, and one party's key bits looking uniform. Deterministic: fixed
// seeds. The two-round ReLU gate on it: test_gates.cpp.
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <vector>

#include "mpc/dpf.h"
#include "fss_test_util.h"

using namespace dr::mpc;
using dr::mpc::test::bit_counts;
using dr::mpc::test::expect_balanced;
using dr::mpc::test::seeded;

namespace {

// 1{x[i] < alpha[i]} reconstructed from both parties' shares.
std::vector<int> compare(const DpfLayout& L, const std::vector<u64>& alpha, const std::vector<u64>& x, uint8_t tag) {
  Prg rng = seeded(tag);
  std::vector<uint8_t> k0(alpha.size() * L.key_bytes), k1(k0.size());
  dpf_lt_gen(L, alpha.data(), alpha.size(), rng, k0.data(), k1.data(), L.key_bytes);
  std::vector<uint8_t> b0(x.size()), b1(x.size());
  dpf_lt_eval(0, L, k0.data(), L.key_bytes, x.data(), x.size(), b0.data());
  dpf_lt_eval(1, L, k1.data(), L.key_bytes, x.data(), x.size(), b1.data());
  std::vector<int> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LE(b0[i], 1);
    EXPECT_LE(b1[i], 1);
    out[i] = b0[i] ^ b1[i];
  }
  return out;
}

}  // namespace

TEST(Dpf, KeySizeIsSixteenBytesPerLevelAndTwoBlocks) {
  EXPECT_EQ(dpf_layout(7).key_bytes, 32u);  // root seed and leaf word: no tree level
  EXPECT_EQ(dpf_layout(31).levels, 24);
  EXPECT_EQ(dpf_layout(31).key_bytes, 16u * 26);
  EXPECT_EQ(dpf_layout(63).key_bytes, 16u * 58);
  EXPECT_THROW(dpf_layout(6), std::runtime_error);
  EXPECT_THROW(dpf_layout(64), std::runtime_error);
}

TEST(Dpf, ComparisonIsExactOverEveryInputAtEightAndSevenBits) {
  for (int n : {7, 8}) {
    const u64 size = u64(1) << n;
    std::vector<u64> alpha, x;
    for (u64 a = 0; a < size; ++a)
      for (u64 v = 0; v < size; ++v) {
        alpha.push_back(a);
        x.push_back(v);
      }
    const std::vector<int> got = compare(dpf_layout(n), alpha, x, uint8_t(n));
    int wrong = 0;
    for (size_t i = 0; i < x.size(); ++i)
      if (got[i] != int(x[i] < alpha[i]) && ++wrong <= 5)
        ADD_FAILURE() << "n=" << n << " alpha=" << alpha[i] << " x=" << x[i] << " got " << got[i];
    EXPECT_EQ(wrong, 0) << "n=" << n;
  }
}

TEST(Dpf, ComparisonIsExactAtEveryWidthNearAlphaAndFarFromIt) {
  std::mt19937_64 gen(7);
  for (int n = kDpfMinBits; n <= kDpfMaxBits; ++n) {
    const u64 mask = (u64(1) << n) - 1;
    std::vector<u64> alpha, x;
    for (int k = 0; k < 200; ++k) {
      const u64 a = gen() & mask;
      // x = alpha, its neighbours, a value sharing alpha's top bits, and any value.
      for (u64 v : {a, a - 1, a + 1, a ^ u64(gen() & 127), a ^ (u64(1) << (gen() % n)), u64(gen())}) {
        alpha.push_back(a);
        x.push_back(v & mask);
      }
    }
    const std::vector<int> got = compare(dpf_layout(n), alpha, x, uint8_t(n));
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(got[i], int(x[i] < alpha[i])) << "n=" << n << " alpha=" << alpha[i] << " x=" << x[i];
  }
}

TEST(Dpf, RefusesValuesOutsideTheDomain) {
  const DpfLayout L = dpf_layout(16);
  Prg rng = seeded(1);
  std::vector<uint8_t> k0(L.key_bytes), k1(L.key_bytes);
  const u64 big = u64(1) << 16, fine = 5;
  EXPECT_THROW(dpf_lt_gen(L, &big, 1, rng, k0.data(), k1.data(), L.key_bytes), std::runtime_error);
  dpf_lt_gen(L, &fine, 1, rng, k0.data(), k1.data(), L.key_bytes);
  uint8_t bit = 0;
  EXPECT_THROW(dpf_lt_eval(0, L, k0.data(), L.key_bytes, &big, 1, &bit), std::runtime_error);
  EXPECT_THROW(dpf_lt_eval(2, L, k0.data(), L.key_bytes, &fine, 1, &bit), std::runtime_error);
}

TEST(Dpf, OnePartysKeyLooksUniformWhateverAlpha) {
  // The same alpha for every key: a key that leaked it would show biased
  // bits (the correction words' two low bits, t_CW, included).
  const DpfLayout L = dpf_layout(31);
  const size_t count = 4000;
  std::vector<u64> alpha(count, 0x12345678);
  Prg rng = seeded(9);
  std::vector<uint8_t> k0(count * L.key_bytes), k1(k0.size());
  dpf_lt_gen(L, alpha.data(), count, rng, k0.data(), k1.data(), L.key_bytes);
  std::vector<int> c = bit_counts(k1.data(), count, L.key_bytes, L.key_bytes);
  expect_balanced(c, count, "client DPF key");
}
