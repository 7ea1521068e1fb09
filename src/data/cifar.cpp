// CIFAR-10 and CIFAR-100, the binary version: records of label byte(s) then
// 3072 pixel bytes (R, G, B planes of 32x32).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "data/files.h"
#include "data/formats.h"

namespace dr::data {

namespace {

// Reads `files` (records of `label_bytes` label bytes then 3072 pixel bytes,
// R, G, B planes of 32x32) into a [take, 3, 32, 32] tensor, reading no more
// records than `limit` needs; the label is byte `label_idx` of a record.
Dataset read_cifar(const std::string& name, const std::vector<std::string>& files, int64_t label_bytes,
                   int64_t label_idx, int64_t classes, int64_t limit, const std::string& hint) {
  const int64_t pix = 3 * 32 * 32, rec = label_bytes + pix;
  std::vector<int64_t> counts;
  int64_t total = 0;
  for (const auto& f : files) {
    const int64_t sz = file_size(f, hint);
    if (sz == 0) fail(f, "file is empty");
    if (sz % rec != 0)
      fail(f, "size " + std::to_string(sz) + " is not a multiple of the record size " + std::to_string(rec) +
                  " (truncated or not a " + name + " binary file)");
    counts.push_back(sz / rec);
    total += sz / rec;
  }
  const int64_t take = limit > 0 ? std::min(limit, total) : total;
  Dataset d;
  d.name = name;
  d.classes = classes;
  d.images = torch::empty({take, 3, 32, 32}, torch::kUInt8);
  d.labels = torch::empty({take}, torch::kInt64);
  uint8_t* img = d.images.data_ptr<uint8_t>();
  int64_t* lab = d.labels.data_ptr<int64_t>();
  int64_t done = 0;
  std::vector<uint8_t> buf;
  for (size_t fi = 0; fi < files.size() && done < take; ++fi) {
    const std::string& path = files[fi];
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    const int64_t want = std::min(counts[fi], take - done);
    const int64_t chunk = 1024;
    for (int64_t r0 = 0; r0 < want; r0 += chunk) {
      const int64_t nr = std::min(chunk, want - r0);
      buf.resize(static_cast<size_t>(nr * rec));
      if (std::fread(buf.data(), 1, buf.size(), f) != buf.size()) {
        std::fclose(f);
        fail(path, "truncated while reading record " + std::to_string(r0));
      }
      for (int64_t r = 0; r < nr; ++r) {
        const uint8_t* p = buf.data() + r * rec;
        const int64_t label = p[label_idx];
        if (label >= classes) {
          std::fclose(f);
          fail(path, "record " + std::to_string(r0 + r) + " has label " + std::to_string(label) +
                         ", outside 0.." + std::to_string(classes - 1));
        }
        lab[done] = label;
        std::memcpy(img + done * pix, p + label_bytes, pix);
        ++done;
      }
    }
    std::fclose(f);
  }
  return d;
}

std::string pick_dir(const std::string& dir, const std::string& sub, const std::string& probe) {
  if (!exists(path_join(dir, probe)) && exists(path_join(path_join(dir, sub), probe))) return path_join(dir, sub);
  return dir;
}

std::string hint(const arch::DataSource& src) {
  return " (" + src.info->name + " needs " + src.info->files + "; DIR is " + src.path + ")";
}

}  // namespace

DataSplit load_cifar10(const arch::DataSource& src, int64_t limit) {
  const std::string dir = pick_dir(src.path, "cifar-10-batches-bin", "data_batch_1.bin");
  std::vector<std::string> train;
  for (int i = 1; i <= 5; ++i) train.push_back(path_join(dir, "data_batch_" + std::to_string(i) + ".bin"));
  DataSplit s;
  s.train = read_cifar("cifar10", train, 1, 0, 10, limit, hint(src));
  s.test = read_cifar("cifar10", {path_join(dir, "test_batch.bin")}, 1, 0, 10, limit, hint(src));
  return s;
}

DataSplit load_cifar100(const arch::DataSource& src, int64_t limit) {
  const std::string dir = pick_dir(src.path, "cifar-100-binary", "train.bin");
  DataSplit s;
  s.train = read_cifar("cifar100", {path_join(dir, "train.bin")}, 2, 1, 100, limit, hint(src));
  s.test = read_cifar("cifar100", {path_join(dir, "test.bin")}, 2, 1, 100, limit, hint(src));
  return s;
}

void write_cifar_bin(const std::string& path, const torch::Tensor& images_u8, const torch::Tensor& labels,
                     bool cifar100) {
  if (images_u8.scalar_type() != torch::kUInt8 || images_u8.dim() != 4 || images_u8.size(1) != 3 ||
      images_u8.size(2) != 32 || images_u8.size(3) != 32)
    throw std::invalid_argument("write_cifar_bin(" + path + "): images must be uint8 [N, 3, 32, 32]");
  const int64_t n = images_u8.size(0);
  if (labels.numel() != n) throw std::invalid_argument("write_cifar_bin(" + path + "): images/labels count mismatch");
  auto img = images_u8.contiguous().cpu();
  auto lab = labels.to(torch::kInt64).contiguous().cpu();
  const int64_t classes = cifar100 ? 100 : 10, lb = cifar100 ? 2 : 1, pix = 3072;
  std::string out;
  out.reserve(static_cast<size_t>(n * (lb + pix)));
  const uint8_t* p = img.data_ptr<uint8_t>();
  const int64_t* l = lab.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (l[i] < 0 || l[i] >= classes)
      throw std::invalid_argument("write_cifar_bin(" + path + "): label " + std::to_string(l[i]) + " out of range");
    if (cifar100) out.push_back(static_cast<char>(l[i] / 5));
    out.push_back(static_cast<char>(l[i]));
    out.append(reinterpret_cast<const char*>(p + i * pix), pix);
  }
  util::write_file_atomic(path, out);
}

}  // namespace dr::data
