#pragma once
// What both batch sources (BatchLoader on the host, DeviceBatches on the
// training device) draw from, so that they give the same batches: the
// epoch's order, each image's crop offsets and flip, reflect indexing and the
// uint8 -> normalised float table. All pure functions of their arguments.
#include <cstdint>
#include <vector>

namespace dr::data {

// The order of an epoch's images: a seeded Fisher-Yates shuffle of 0..n-1
// (depends only on seed and epoch), or 0..n-1 when !shuffle.
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

// The random crop and flip of the image at `position` of global batch
// `batch` in `epoch`: offsets in [-pad, pad] and a flip (false when !flip).
struct Crop {
  int64_t dx = 0, dy = 0;
  bool flip = false;
};
Crop crop_of(uint64_t seed, int64_t epoch, int64_t batch, int64_t position, int pad, bool flip);

// Index i reflected into [0, n) (numpy/PyTorch "reflect": the edge is not repeated).
int64_t reflect(int64_t i, int64_t n);

// table[c * 256 + v] = (v / 255 - mean[c]) / std[c] in float (a zero std is 1).
std::vector<float> normalisation_table(const std::vector<float>& mean, const std::vector<float>& std);

}  // namespace dr::data
