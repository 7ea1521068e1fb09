// load_dataset: the registry entry of a --data source, its loader, and the
// normalisation statistics of the training split.
#include "data/dataset.h"

#include <cmath>

#include "data/formats.h"

namespace dr::data {

namespace {

using Loader = DataSplit (*)(const arch::DataSource&, int64_t);

// The loaders by the registry's `loader` names: one line per file format.
Loader find_loader(const arch::DataSource& src) {
  static const std::pair<const char*, Loader> table[] = {{"cifar10-binary", load_cifar10},
                                                         {"cifar100-binary", load_cifar100},
                                                         {"idx", load_idx},
                                                         {"jpeg-folders", load_jpeg_folders},
                                                         {"synthetic", load_synthetic}};
  for (const auto& [name, loader] : table)
    if (src.info->loader == name) return loader;
  throw std::logic_error("dataset '" + src.info->name + "' names loader '" + src.info->loader + "', which src/data lacks");
}

}  // namespace

int64_t Dataset::size() const { return images.defined() ? images.size(0) : 0; }
int64_t Dataset::channels() const { return images.defined() && images.dim() == 4 ? images.size(1) : 0; }
int64_t Dataset::height() const { return images.defined() && images.dim() == 4 ? images.size(2) : 0; }
int64_t Dataset::width() const { return images.defined() && images.dim() == 4 ? images.size(3) : 0; }

void compute_mean_std(Dataset& d) {
  const int64_t n = d.size(), C = d.channels(), plane = d.height() * d.width();
  d.mean.assign(static_cast<size_t>(C), 0.f);
  d.std.assign(static_cast<size_t>(C), 1.f);
  if (n == 0 || plane == 0) return;
  auto img = d.images.contiguous();
  const uint8_t* p = img.data_ptr<uint8_t>();
  std::vector<uint64_t> sum(C, 0), sq(C, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      uint64_t s = 0, q = 0;
      const uint8_t* q0 = p + (i * C + c) * plane;
      for (int64_t j = 0; j < plane; ++j) {
        s += q0[j];
        q += static_cast<uint64_t>(q0[j]) * q0[j];
      }
      sum[c] += s;
      sq[c] += q;
    }
  const double cnt = static_cast<double>(n) * plane;
  for (int64_t c = 0; c < C; ++c) {
    const double m = sum[c] / cnt, var = std::max(0.0, sq[c] / cnt - m * m);
    d.mean[c] = static_cast<float>(m / 255.0);
    const double sd = std::sqrt(var) / 255.0;
    d.std[c] = sd > 1e-6 ? static_cast<float>(sd) : 1.f;
  }
}

DataSplit load_dataset(const std::string& source, int64_t limit) {
  const arch::DataSource src = arch::parse_source(source);
  DataSplit s = find_loader(src)(src, std::max<int64_t>(0, limit));
  if (s.train.size() == 0) throw DataError("dataset source '" + source + "': no training images");
  if (s.test.size() == 0) throw DataError("dataset source '" + source + "': no test images");
  compute_mean_std(s.train);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

}  // namespace dr::data
