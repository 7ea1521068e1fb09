#pragma once
// Helpers of the tests of the FSS primitives and the gates: fixed-seed
// streams and a balance check of one party's bits (a party's key or share
// must look uniform whatever the dealer's inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mpc/prg.h"

namespace dr::mpc::test {

inline Prg seeded(uint8_t tag) {
  uint8_t seed[16];
  for (int i = 0; i < 16; ++i) seed[i] = uint8_t(tag * 16 + i);
  return Prg(seed);
}

// Count of set bits at each bit position over `count` records of `bytes` bytes.
inline std::vector<int> bit_counts(const uint8_t* data, size_t count, size_t bytes, size_t stride) {
  std::vector<int> c(bytes * 8, 0);
  for (size_t r = 0; r < count; ++r)
    for (size_t i = 0; i < bytes; ++i)
      for (int b = 0; b < 8; ++b) c[i * 8 + b] += (data[r * stride + i] >> b) & 1;
  return c;
}

// Every position's count within 6 standard deviations of count/2 (fixed
// seeds make this deterministic; 6 sigma keeps it far from the edge).
inline void expect_balanced(const std::vector<int>& c, size_t count, const std::string& what) {
  const double sd = std::sqrt(double(count) / 4), lo = count / 2.0 - 6 * sd, hi = count / 2.0 + 6 * sd;
  int bad = 0;
  for (size_t i = 0; i < c.size(); ++i)
    if (c[i] < lo || c[i] > hi) {
      if (++bad <= 5) ADD_FAILURE() << what << ": bit " << i << " set " << c[i] << " of " << count;
    }
  EXPECT_EQ(bad, 0) << what;
}

}  // namespace dr::mpc::test
