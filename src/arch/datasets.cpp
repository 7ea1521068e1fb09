// The dataset registry and the --data NAME[:PATH] grammar.
#include "arch/datasets.h"

#include <algorithm>

#include "arch/network.h"
#include "util/strings.h"

namespace dr::arch {

const std::vector<DatasetInfo>& datasets() {
  static const std::vector<DatasetInfo> all = {
      {"cifar10", {"cifar-10"}, "cifar10-binary", "data/cifar10", {{3, 32, 32}, 10},
       "data_batch_1..5.bin and test_batch.bin (CIFAR-10 binary version), in DIR or DIR/cifar-10-batches-bin"},
      {"cifar100", {"cifar-100"}, "cifar100-binary", "data/cifar100", {{3, 32, 32}, 100},
       "train.bin and test.bin (CIFAR-100 binary version, fine labels), in DIR or DIR/cifar-100-binary"},
      {"tinyimagenet", {"tiny-imagenet", "tiny_imagenet"}, "jpeg-folders", "data/tinyimagenet", {{3, 64, 64}, 200},
       "train/<wnid>/images/*.JPEG, val/val_annotations.txt and val/images/*.JPEG, in DIR or DIR/tiny-imagenet-200"},
      {"fashion-mnist", {"fashion_mnist", "fashionmnist", "fmnist"}, "idx", "/usr/share/datasets/fashion-mnist",
       {{1, 28, 28}, 10},
       "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
       "(gzipped or not) in DIR (Debian package dataset-fashion-mnist)"},
      {"synthetic", {}, "synthetic", "", {{3, 32, 32}, 10},
       "nothing: synthetic[:CxHxW[:CLASSES[:N]]] builds a small learnable set (default 3x32x32, 10 classes, "
       "512 train and N/4 test images)"},
  };
  return all;
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> n;
  for (const auto& d : datasets()) n.push_back(d.name);
  return n;
}

const DatasetInfo& find_dataset(const std::string& name) {
  const std::string key = util::lower(name);
  for (const auto& d : datasets())
    if (d.name == key || std::find(d.aliases.begin(), d.aliases.end(), key) != d.aliases.end()) return d;
  throw SpecError("unknown dataset '" + name + "' (accepted: " + util::join(dataset_names()) + ")");
}

InputSpec dataset_input(const std::string& dataset) { return find_dataset(dataset).input; }

namespace {

int64_t synthetic_number(const std::string& s, const std::string& source, int64_t lo, int64_t hi) {
  const std::string what = "synthetic source '" + source + "'";
  if (s.empty() || s.size() > 12 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw SpecError(what + ": '" + s + "' is not a number (expected synthetic[:CxHxW[:CLASSES[:N]]])");
  const int64_t v = std::stoll(s);
  if (v < lo || v > hi)
    throw SpecError(what + ": " + s + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

// The shape and classes share the limits of network.h with parse_shape and
// build_network; the images and the two totals below are the synthetic
// generator's own bounds (src/data/synthetic.cpp holds every image and a
// pattern per class and channel in memory).
void parse_synthetic(DataSource& d) {
  if (d.path.empty()) return;
  const auto parts = util::split(d.path, ':');
  if (parts.size() > 3)
    throw SpecError("synthetic source '" + d.text + "': expected synthetic[:CxHxW[:CLASSES[:N]]]");
  if (!parts[0].empty()) {
    const auto dims = util::split(parts[0], 'x');
    if (dims.size() != 3) throw SpecError("synthetic source '" + d.text + "': shape '" + parts[0] + "' is not CxHxW");
    d.input.shape = {synthetic_number(dims[0], d.text, 1, limits::kMaxInputChannels),
                     synthetic_number(dims[1], d.text, 1, limits::kMaxInputSide),
                     synthetic_number(dims[2], d.text, 1, limits::kMaxInputSide)};
  }
  if (parts.size() > 1 && !parts[1].empty())
    d.input.classes = synthetic_number(parts[1], d.text, 1, limits::kMaxClasses);
  if (parts.size() > 2 && !parts[2].empty()) d.synthetic_images = synthetic_number(parts[2], d.text, 1, 100000000);
  // Divided, not multiplied: images x pixels can exceed int64_t within the limits.
  const int64_t max_pixels = int64_t(1) << 33;
  if (d.input.shape.numel() > max_pixels / d.synthetic_images)
    throw SpecError("synthetic source '" + d.text + "': too large (at most 2^33 pixels in all)");
  // 2^23 covers the largest set accepted before the input limits were shared
  // (100,000 classes x 64 channels).
  const int64_t max_patterns = int64_t(1) << 23;
  if (d.input.classes > max_patterns / d.input.shape.c)
    throw SpecError("synthetic source '" + d.text + "': too many classes x channels (at most 2^23 = " +
                    std::to_string(max_patterns) + ")");
}

}  // namespace

DataSource parse_source(const std::string& source) {
  const auto colon = source.find(':');
  const std::string name = source.substr(0, colon);
  DataSource d;
  d.text = source;
  try {
    d.info = &find_dataset(name);
  } catch (const SpecError&) {
    throw SpecError("dataset source '" + source + "': unknown dataset '" + name + "' (expected one of " +
                    util::join(dataset_names()) + ", optionally followed by :PATH)");
  }
  d.input = d.info->input;
  d.path = colon == std::string::npos ? "" : source.substr(colon + 1);
  if (d.info->loader == "synthetic")
    parse_synthetic(d);
  else if (d.path.empty())
    d.path = d.info->default_path;
  return d;
}

}  // namespace dr::arch
