// Tests of the FSS primitives (src/mpc/aes.h, src/mpc/prg.h, src/mpc/dcf.h):
// AES known answers, the Prg stream, the DCF (exhaustive at n = 8, random at
// n = 64 and every depth), plus a statistical check that one party's key
// material looks uniform. Deterministic: every random choice comes from a
// fixed seed. The gates built on the DCF: test_gates.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mpc/aes.h"
#include "mpc/dcf.h"
#include "mpc/prg.h"
#include "fss_test_util.h"

using namespace dr::mpc;
using dr::mpc::test::bit_counts;
using dr::mpc::test::expect_balanced;
using dr::mpc::test::seeded;

namespace {

std::vector<uint8_t> hex(const std::string& h) {
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::stoul(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

// Both parties' DCF shares of count keys, summed.
std::vector<u64> dcf_sum(int n, int w, const std::vector<uint8_t>& k0, const std::vector<uint8_t>& k1,
                         const std::vector<u64>& x) {
  std::vector<u64> o0(x.size() * w), o1(x.size() * w);
  dcf_eval_batch(0, n, w, k0.data(), x.data(), x.size(), o0.data());
  dcf_eval_batch(1, n, w, k1.data(), x.data(), x.size(), o1.data());
  for (size_t i = 0; i < o0.size(); ++i) o0[i] += o1[i];
  return o0;
}

}  // namespace

// ---------------------------------------------------------------------------
// AES
// ---------------------------------------------------------------------------

TEST(Aes, Fips197AppendixC1) {
  auto key = hex("000102030405060708090a0b0c0d0e0f");
  auto pt = hex("00112233445566778899aabbccddeeff");
  auto ct = hex("69c4e0d86a7b0430d8cdb78070b4c55a");
  Aes128Ecb aes(key.data());
  // 1000 copies in one call (the batched path), then in place.
  std::vector<uint8_t> in(16 * 1000), out(in.size());
  for (size_t i = 0; i < 1000; ++i) std::memcpy(&in[16 * i], pt.data(), 16);
  aes.encrypt_blocks(in.data(), out.data(), 1000);
  for (size_t i = 0; i < 1000; ++i) ASSERT_EQ(0, std::memcmp(&out[16 * i], ct.data(), 16)) << i;
  aes.encrypt_blocks(in.data(), in.data(), 1000);
  EXPECT_EQ(in, out);
}

TEST(Aes, CtrSp80038aF51) {
  auto key = hex("2b7e151628aed2a6abf7158809cf4f3c");
  auto iv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  auto pt = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
  auto ct = hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff");
  Aes128Ctr ctr(key.data(), iv.data());
  std::vector<uint8_t> ks(32);
  ctr.keystream(ks.data(), 5);  // a partial block, then the rest: one stream
  ctr.keystream(ks.data() + 5, 27);
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(uint8_t(pt[i] ^ ks[i]), ct[i]) << i;
}

TEST(Aes, FixedKeyContextIsTheFixedKey) {
  Aes128Ecb ref(kFssFixedKey);
  std::vector<uint8_t> in(16 * 64), a(in.size()), b(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i * 7 + 3);
  ref.encrypt_blocks(in.data(), a.data(), 64);
  fss_fixed_key_aes().encrypt_blocks(in.data(), b.data(), 64);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, in);
}

// ---------------------------------------------------------------------------
// Prg
// ---------------------------------------------------------------------------

// Expected values from the OpenSSL command line:
//   head -c 4128 /dev/zero | openssl enc -aes-128-ctr
//     -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000000 | xxd -p
TEST(Prg, KnownAnswer) {
  Prg prg = seeded(0);
  std::vector<uint8_t> s(4128);
  prg.bytes(s.data(), 64);
  prg.bytes(s.data() + 64, s.size() - 64);
  EXPECT_EQ(std::vector<uint8_t>(s.begin(), s.begin() + 64),
            hex("c6a13b37878f5b826f4f8162a1c8d8797346139595c0b41e497bbde365f42d0a"
                "49d68753999ba68ce3897a686081b09db9ad2b2e346ac238505d365e9cb7fc56"));
  EXPECT_EQ(std::vector<uint8_t>(s.end() - 32, s.end()),
            hex("1337d5314ce3de09efb09d44a44830f5173f9bb248922e0f0b1ef4a1bf3efa72"));
  Prg again = seeded(0);
  EXPECT_EQ(again.next_u64(), 0x825b8f87373ba1c6ull);  // little-endian words
}

TEST(Prg, EverySplitReadsTheSameStream) {
  Prg whole = seeded(1);
  std::vector<uint8_t> ref(40000);
  whole.bytes(ref.data(), ref.size());
  Prg parts = seeded(1);
  std::vector<uint8_t> got(ref.size());
  std::mt19937_64 pick(7);
  size_t pos = 0;
  while (pos < got.size()) {
    const size_t left = got.size() - pos;
    switch (pick() % 4) {
      case 0:
        if (left >= 8) {
          u64 v = parts.next_u64();
          std::memcpy(&got[pos], &v, 8);
          pos += 8;
        }
        break;
      case 1: {
        size_t words = std::min<size_t>(pick() % 700, left / 8);
        std::vector<u64> w(words);
        parts.fill(w.data(), words);
        if (words) std::memcpy(&got[pos], w.data(), words * 8);
        pos += words * 8;
        break;
      }
      default: {
        size_t n = std::min<size_t>(pick() % 9000, left);
        parts.bytes(&got[pos], n);
        pos += n;
      }
    }
  }
  EXPECT_EQ(got, ref);
}

TEST(Prg, SeedsGiveDistinctStreams) {
  Prg a = seeded(2), b = seeded(3), c = seeded(2), os1, os2;
  std::vector<u64> va(64), vb(64), vc(64), v1(64), v2(64);
  a.fill(va.data(), 64);
  b.fill(vb.data(), 64);
  c.fill(vc.data(), 64);
  os1.fill(v1.data(), 64);
  os2.fill(v2.data(), 64);
  EXPECT_EQ(va, vc);
  EXPECT_NE(va, vb);
  EXPECT_NE(v1, v2);
  EXPECT_NE(v1, va);
}

TEST(Prg, MoveKeepsTheStream) {
  Prg a = seeded(4), ref = seeded(4);
  a.next_u64();
  ref.next_u64();
  Prg b(std::move(a));
  EXPECT_EQ(b.next_u64(), ref.next_u64());
  EXPECT_THROW(a.next_u64(), std::runtime_error);  // NOLINT(bugprone-use-after-move)
}

// ---------------------------------------------------------------------------
// DCF
// ---------------------------------------------------------------------------

TEST(Dcf, KeyBytesAsDocumented) {
  for (int n : {1, 8, 32, 63, 64})
    for (int w : {1, 2, 3, 7})
      EXPECT_EQ(dcf_key_bytes(n, w), size_t(16 + n * (16 + 8 * w) + 8 * w)) << n << " " << w;
  EXPECT_EQ(dcf_key_bytes(63, 2), 2048u);
  EXPECT_THROW(dcf_key_bytes(0, 1), std::runtime_error);
  EXPECT_THROW(dcf_key_bytes(65, 1), std::runtime_error);
  EXPECT_THROW(dcf_key_bytes(8, 0), std::runtime_error);
}

TEST(Dcf, ExhaustiveN8) {
  for (int w : {1, 2}) {
    const size_t kb = dcf_key_bytes(8, w);
    Prg rng = seeded(10 + w);
    std::mt19937_64 rnd(w);
    for (u64 alpha = 0; alpha < 256; ++alpha) {
      std::vector<u64> beta(w);
      for (auto& b : beta) b = rnd();
      std::vector<uint8_t> k0(kb), k1(kb);
      dcf_gen(8, alpha, beta.data(), w, rng, k0.data(), k1.data());
      // The same key for all 256 inputs, evaluated as one batch.
      std::vector<uint8_t> rep0(256 * kb), rep1(256 * kb);
      for (size_t i = 0; i < 256; ++i) {
        std::memcpy(&rep0[i * kb], k0.data(), kb);
        std::memcpy(&rep1[i * kb], k1.data(), kb);
      }
      std::vector<u64> x(256);
      for (u64 i = 0; i < 256; ++i) x[i] = i;
      auto sum = dcf_sum(8, w, rep0, rep1, x);
      for (u64 xi = 0; xi < 256; ++xi)
        for (int k = 0; k < w; ++k)
          ASSERT_EQ(sum[xi * w + k], xi < alpha ? beta[k] : 0) << "w=" << w << " alpha=" << alpha << " x=" << xi;
    }
  }
}

// Random alphas with the inputs around them and at the ends of the domain.
TEST(Dcf, RandomN64) {
  const int n = 64, w = 2, per = 8;
  const size_t keys = 1000, kb = dcf_key_bytes(n, w);
  std::mt19937_64 rnd(64);
  std::vector<u64> alpha(keys), beta(keys * w);
  for (size_t i = 0; i < keys; ++i) alpha[i] = rnd();
  alpha[0] = 0;
  alpha[1] = ~u64(0);
  alpha[2] = u64(1) << 63;
  alpha[3] = 1;
  for (auto& b : beta) b = rnd();
  std::vector<uint8_t> k0(keys * kb), k1(keys * kb);
  Prg rng = seeded(20);
  dcf_gen_batch(n, w, alpha.data(), beta.data(), keys, rng, k0.data(), k1.data());
  std::vector<uint8_t> r0(keys * per * kb), r1(keys * per * kb);
  std::vector<u64> x(keys * per);
  for (size_t i = 0; i < keys; ++i) {
    const u64 a = alpha[i];
    const u64 xs[per] = {a, a - 1, a + 1, 0, ~u64(0), rnd(), rnd() >> 1, a ^ (u64(1) << (rnd() % 64))};
    for (int j = 0; j < per; ++j) {
      x[i * per + j] = xs[j];
      std::memcpy(&r0[(i * per + j) * kb], &k0[i * kb], kb);
      std::memcpy(&r1[(i * per + j) * kb], &k1[i * kb], kb);
    }
  }
  auto sum = dcf_sum(n, w, r0, r1, x);
  for (size_t e = 0; e < x.size(); ++e) {
    const size_t i = e / per;
    for (int k = 0; k < w; ++k)
      ASSERT_EQ(sum[e * w + k], x[e] < alpha[i] ? beta[i * w + k] : 0)
          << "alpha=" << alpha[i] << " x=" << x[e] << " k=" << k;
  }
}

// Every depth, odd and wider payloads (value blocks half used, several blocks).
TEST(Dcf, EveryDepthAndWidth) {
  std::mt19937_64 rnd(99);
  Prg rng = seeded(30);
  for (int n = 1; n <= 64; ++n)
    for (int w : {1, 3, 5}) {
      const u64 top = n == 64 ? ~u64(0) : (u64(1) << n) - 1;
      const size_t kb = dcf_key_bytes(n, w);
      for (int rep = 0; rep < 6; ++rep) {
        const u64 alpha = rep == 0 ? 0 : rep == 1 ? top : rnd() & top;
        std::vector<u64> beta(w);
        for (auto& b : beta) b = rnd();
        std::vector<uint8_t> k0(kb), k1(kb);
        dcf_gen(n, alpha, beta.data(), w, rng, k0.data(), k1.data());
        for (u64 x : {u64(0), top, alpha, (alpha - 1) & top, (alpha + 1) & top, rnd() & top}) {
          std::vector<u64> o0(w), o1(w);
          dcf_eval(0, n, w, k0.data(), x, o0.data());
          dcf_eval(1, n, w, k1.data(), x, o1.data());
          for (int k = 0; k < w; ++k)
            ASSERT_EQ(o0[k] + o1[k], x < alpha ? beta[k] : 0) << "n=" << n << " w=" << w << " alpha=" << alpha << " x=" << x;
        }
      }
    }
}

// Batch and single calls agree, across chunk boundaries (64 and 512 elements).
TEST(Dcf, BatchEqualsSingle) {
  const int n = 40, w = 2;
  const size_t count = 1500, kb = dcf_key_bytes(n, w);
  std::mt19937_64 rnd(5);
  std::vector<u64> alpha(count), beta(count * w), x(count);
  for (size_t i = 0; i < count; ++i) {
    alpha[i] = rnd() >> 24;
    x[i] = i % 3 == 0 ? alpha[i] : rnd() >> 24;
  }
  for (auto& b : beta) b = rnd();
  std::vector<uint8_t> b0(count * kb), b1(count * kb), s0(count * kb), s1(count * kb);
  Prg rb = seeded(40), rs = seeded(40);
  dcf_gen_batch(n, w, alpha.data(), beta.data(), count, rb, b0.data(), b1.data());
  for (size_t i = 0; i < count; ++i) dcf_gen(n, alpha[i], &beta[i * w], w, rs, &s0[i * kb], &s1[i * kb]);
  EXPECT_EQ(b0, s0);  // the Prg only draws root seeds, in the same order
  EXPECT_EQ(b1, s1);
  for (int party = 0; party < 2; ++party) {
    const auto& keys = party ? b1 : b0;
    std::vector<u64> batch(count * w), single(w);
    dcf_eval_batch(party, n, w, keys.data(), x.data(), count, batch.data());
    for (size_t i = 0; i < count; ++i) {
      dcf_eval(party, n, w, &keys[i * kb], x[i], single.data());
      for (int k = 0; k < w; ++k) ASSERT_EQ(batch[i * w + k], single[k]) << "party " << party << " i " << i;
    }
  }
}

TEST(Dcf, KeysDifferOnlyInRootSeed) {
  const size_t kb = dcf_key_bytes(63, 2);
  std::vector<uint8_t> k0(kb), k1(kb);
  const u64 beta[2] = {1, 2};
  Prg rng = seeded(50);
  dcf_gen(63, 12345, beta, 2, rng, k0.data(), k1.data());
  EXPECT_NE(0, std::memcmp(k0.data(), k1.data(), 16));
  EXPECT_EQ(0, std::memcmp(k0.data() + 16, k1.data() + 16, kb - 16));
}

TEST(Dcf, RejectsBadArguments) {
  const size_t kb = dcf_key_bytes(8, 1);
  std::vector<uint8_t> k0(kb), k1(kb);
  u64 beta = 1, out = 0;
  Prg rng = seeded(51);
  EXPECT_THROW(dcf_gen(8, 256, &beta, 1, rng, k0.data(), k1.data()), std::runtime_error);
  dcf_gen(8, 255, &beta, 1, rng, k0.data(), k1.data());
  EXPECT_THROW(dcf_eval(0, 8, 1, k0.data(), 256, &out), std::runtime_error);
  EXPECT_THROW(dcf_eval(2, 8, 1, k0.data(), 3, &out), std::runtime_error);
  EXPECT_THROW(dcf_eval(0, 0, 1, k0.data(), 0, &out), std::runtime_error);
}

// One party's key alone: every bit balanced over many keys, for extreme
// alpha and beta alike (it must not depend on them).
TEST(Dcf, OnePartyKeyBitsLookUniform) {
  const int n = 16, w = 2;
  const size_t count = 4096, kb = dcf_key_bytes(n, w);
  for (u64 alpha : {u64(0), u64(0xffff), u64(0x8000)})
    for (u64 b : {u64(0), ~u64(0)}) {
      std::vector<u64> al(count, alpha), beta(count * w, b);
      std::vector<uint8_t> k0(count * kb), k1(count * kb);
      Prg rng = seeded(uint8_t(60 + alpha % 7 + b % 5));
      dcf_gen_batch(n, w, al.data(), beta.data(), count, rng, k0.data(), k1.data());
      expect_balanced(bit_counts(k0.data(), count, kb, kb), count, "party 0 key, alpha " + std::to_string(alpha));
      expect_balanced(bit_counts(k1.data(), count, kb, kb), count, "party 1 key, alpha " + std::to_string(alpha));
    }
}
