#include "data/sampling.h"

#include <utility>

namespace dr::data {

namespace {

uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t h = mix64(a ^ 0x243F6A8885A308D3ULL);
  h = mix64(h ^ b);
  h = mix64(h ^ c);
  return mix64(h ^ d);
}

struct Rng {
  uint64_t s;
  uint64_t next() { return s = mix64(s), s; }
  uint64_t below(uint64_t n) { return (next() >> 11) % n; }  // [0, n)
};

constexpr uint64_t kPermSalt = 0x7065726D;  // "perm"

}  // namespace

std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return order;
  Rng rng{hash(seed, static_cast<uint64_t>(epoch), kPermSalt, 0)};
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i) + 1)]);
  return order;
}

Crop crop_of(uint64_t seed, int64_t epoch, int64_t batch, int64_t position, int pad, bool flip) {
  Rng rng{hash(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(batch), static_cast<uint64_t>(position))};
  const uint64_t span = 2 * static_cast<uint64_t>(pad) + 1;
  Crop c;
  c.dx = static_cast<int64_t>(rng.below(span)) - pad;
  c.dy = static_cast<int64_t>(rng.below(span)) - pad;
  c.flip = flip && (rng.next() >> 63);
  return c;
}

int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n - 2;
  i %= period;
  if (i < 0) i += period;
  return i >= n ? period - i : i;
}

std::vector<float> normalisation_table(const std::vector<float>& mean, const std::vector<float>& std) {
  std::vector<float> table(mean.size() * 256);
  for (size_t c = 0; c < mean.size(); ++c) {
    const float sd = std[c] != 0.f ? std[c] : 1.f;
    for (int v = 0; v < 256; ++v) table[c * 256 + v] = (static_cast<float>(v) / 255.f - mean[c]) / sd;
  }
  return table;
}

}  // namespace dr::data
