// A deterministic, learnable synthetic set for tests.
#include <algorithm>
#include <cstdlib>

#include "data/formats.h"

namespace dr::data {

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
int64_t uniform_int(uint64_t& s, int64_t lo, int64_t hi) {  // [lo, hi]
  return lo + static_cast<int64_t>((splitmix(s) >> 11) % static_cast<uint64_t>(hi - lo + 1));
}

// (own direction, frequency and phase per channel) and a coarse 4x4 blob
// pattern. Each image: its class pattern plus triangular noise. Integer
// arithmetic only, so the data is bit-identical on every platform.
Dataset make_synthetic(int64_t C, int64_t H, int64_t W, int64_t classes, int64_t n, uint64_t split_salt) {
  struct ClassPat {
    std::vector<int> offset, phase, grid;
    int fx, fy;
  };
  std::vector<ClassPat> pats(classes);
  for (int64_t k = 0; k < classes; ++k) {
    uint64_t s = 0x5EED0000ULL + static_cast<uint64_t>(k) * 7919;
    auto& p = pats[k];
    for (int64_t c = 0; c < C; ++c) {
      p.offset.push_back(static_cast<int>(uniform_int(s, -60, 60)));
      p.phase.push_back(static_cast<int>(uniform_int(s, 0, 255)));
    }
    do {
      p.fx = static_cast<int>(uniform_int(s, -3, 3));
      p.fy = static_cast<int>(uniform_int(s, -3, 3));
    } while (p.fx == 0 && p.fy == 0);
    for (int64_t i = 0; i < C * 16; ++i) p.grid.push_back(static_cast<int>(uniform_int(s, -30, 30)));
  }
  Dataset d;
  d.name = "synthetic";
  d.classes = classes;
  d.images = torch::empty({n, C, H, W}, torch::kUInt8);
  d.labels = torch::empty({n}, torch::kInt64);
  uint8_t* img = d.images.data_ptr<uint8_t>();
  int64_t* lab = d.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    uint64_t s = (split_salt << 40) ^ (static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ULL);
    splitmix(s);
    const int64_t k = i % classes;
    lab[i] = k;
    const auto& p = pats[k];
    uint8_t* o = img + i * C * H * W;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int t = static_cast<int>(((p.fx * x * 256) / W + (p.fy * y * 256) / H + p.phase[c]) & 255);
          const int tri = (std::abs(t - 128) - 64) * 5 / 8;  // [-40, 40]
          const int g = p.grid[c * 16 + (y * 4 / H) * 4 + (x * 4 / W)];
          const uint64_t r = splitmix(s);
          const int noise = static_cast<int>(r & 63) + static_cast<int>((r >> 8) & 63) - 63;  // [-63, 63]
          const int v = 128 + p.offset[c] + tri + g + noise;
          *o++ = static_cast<uint8_t>(std::clamp(v, 0, 255));
        }
  }
  return d;
}


}  // namespace

DataSplit load_synthetic(const arch::DataSource& src, int64_t limit) {
  const arch::Shape& sh = src.input.shape;
  int64_t n = src.synthetic_images, ntest = std::max<int64_t>(1, n / 4);
  if (limit > 0) {
    n = std::min(n, limit);
    ntest = std::min(ntest, limit);
  }
  DataSplit s;
  s.train = make_synthetic(sh.c, sh.h, sh.w, src.input.classes, n, 1);
  s.test = make_synthetic(sh.c, sh.h, sh.w, src.input.classes, ntest, 2);
  return s;
}

}  // namespace dr::data
