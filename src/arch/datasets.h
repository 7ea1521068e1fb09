#pragma once
// The datasets deepreduce knows: one registry entry per dataset (name,
// aliases, loader, default path, input shape, classes), from which the CLI's
// help, the input presets of `count`/`cost` and the loaders of src/data take
// every list. No torch here: the loaders live in src/data, one file per file
// format, found by the entry's `loader` name.
//
// Adding a dataset in a known format: one entry in datasets.cpp. A new file
// format: one file in src/data/ and one line in its loader table
// (src/data/dataset.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::arch {

// Input of a network: image shape and number of classes.
struct InputSpec {
  Shape shape;
  int64_t classes = 0;
};

struct DatasetInfo {
  std::string name;                  // "cifar10"
  std::vector<std::string> aliases;  // other accepted spellings ("fmnist", ...)
  std::string loader;                // the loader of src/data that reads it ("cifar10-binary", "idx", ...)
  std::string default_path;          // where its files are when no :PATH is given ("" for synthetic)
  InputSpec input;                   // image shape and classes (synthetic: the defaults)
  std::string files;                 // what the loader reads, for help and error messages
};

// Every dataset, in the order help texts list them.
const std::vector<DatasetInfo>& datasets();
// By name or alias, case-insensitive. Throws SpecError listing the names.
const DatasetInfo& find_dataset(const std::string& name);
// The names (no aliases): cifar10, cifar100, tinyimagenet, fashion-mnist, synthetic.
std::vector<std::string> dataset_names();
// The input preset of a dataset (synthetic: 3x32x32, 10 classes).
InputSpec dataset_input(const std::string& dataset);

// A parsed --data NAME[:PATH] source. For synthetic, PATH is
// [CxHxW[:CLASSES[:N]]] and gives the shape, classes and training images.
struct DataSource {
  const DatasetInfo* info = nullptr;
  std::string text;  // as given
  std::string path;  // the PATH part, or the default path
  InputSpec input;   // what the network is built for
  int64_t synthetic_images = 512;  // synthetic only: N training images
};
// Throws SpecError naming the source and what is accepted. Reads no file.
DataSource parse_source(const std::string& source);

}  // namespace dr::arch
