// TinyImageNet's folders: train/<wnid>/images/*.JPEG and val/ with
// val_annotations.txt; 64x64, greyscale replicated to 3 channels.
#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <unordered_map>

#include "data/files.h"
#include "data/formats.h"
#include "util/strings.h"

namespace dr::data {

namespace fs = std::filesystem;
using util::trim;

namespace {

// Image files with their labels.
struct Listing {
  std::vector<std::string> files;
  std::vector<int64_t> labels;
};

// wnids.txt, else the sorted class directories of train/.
std::vector<std::string> class_ids(const std::string& root, const std::string& train_dir) {
  std::vector<std::string> wnids;
  const std::string wn = path_join(root, "wnids.txt");
  if (exists(wn)) {
    std::istringstream in(read_bytes(wn));
    for (std::string line; std::getline(in, line);)
      if (!trim(line).empty()) wnids.push_back(trim(line));
    if (wnids.empty()) fail(wn, "no class ids");
  } else {
    std::error_code ec;
    for (auto it = fs::directory_iterator(train_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->is_directory()) wnids.push_back(it->path().filename().string());
    if (ec) fail(train_dir, "cannot list: " + ec.message());
    std::sort(wnids.begin(), wnids.end());
    if (wnids.empty()) fail(train_dir, "no class directories");
  }
  std::set<std::string> seen;
  for (const auto& w : wnids)
    if (!seen.insert(w).second) fail(wn, "duplicate class id " + w);
  return wnids;
}

// The sorted JPEG files of dir (full paths).
std::vector<std::string> jpeg_files(const std::string& dir, const std::string& wnid) {
  if (!is_dir(dir)) fail(dir, "directory not found (class " + wnid + ")");
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string f = it->path().filename().string();
    if (is_jpeg_name(f)) files.push_back(f);
  }
  if (ec) fail(dir, "cannot list: " + ec.message());
  std::sort(files.begin(), files.end());
  for (auto& f : files) f = path_join(dir, f);
  return files;
}

// Train files per class, ordered round-robin over the classes so that a
// limit keeps a class-balanced prefix.
Listing train_listing(const std::string& train_dir, const std::vector<std::string>& wnids, int64_t limit) {
  std::vector<std::vector<std::string>> per_class;
  size_t longest = 0;
  for (const auto& w : wnids) {
    per_class.push_back(jpeg_files(path_join(path_join(train_dir, w), "images"), w));
    longest = std::max(longest, per_class.back().size());
  }
  Listing l;
  for (size_t r = 0; r < longest; ++r)
    for (size_t c = 0; c < wnids.size(); ++c)
      if (r < per_class[c].size() && (limit <= 0 || static_cast<int64_t>(l.files.size()) < limit)) {
        l.files.push_back(per_class[c][r]);
        l.labels.push_back(static_cast<int64_t>(c));
      }
  if (l.files.empty()) fail(train_dir, "no JPEG images");
  return l;
}

// val/val_annotations.txt: FILE<TAB>WNID[<TAB>box...] per line.
Listing val_listing(const std::string& root, const std::vector<std::string>& wnids, int64_t limit) {
  std::unordered_map<std::string, int64_t> index;
  for (size_t i = 0; i < wnids.size(); ++i) index.emplace(wnids[i], static_cast<int64_t>(i));
  const std::string ann = path_join(path_join(root, "val"), "val_annotations.txt");
  const std::string images = path_join(path_join(root, "val"), "images");
  Listing l;
  std::istringstream in(read_bytes(ann));
  std::string line;
  for (int64_t ln = 1; std::getline(in, line) && (limit <= 0 || static_cast<int64_t>(l.files.size()) < limit); ++ln) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    const auto t1 = line.find('\t');
    if (t1 == std::string::npos) fail(ann, "line " + std::to_string(ln) + ": expected FILE<TAB>WNID...");
    const auto t2 = line.find('\t', t1 + 1);
    const std::string file = trim(line.substr(0, t1));
    const std::string wnid = trim(line.substr(t1 + 1, t2 == std::string::npos ? std::string::npos : t2 - t1 - 1));
    auto it = index.find(wnid);
    if (it == index.end()) fail(ann, "line " + std::to_string(ln) + ": unknown class id '" + wnid + "'");
    if (file.empty() || file.find('/') != std::string::npos || file == "..")
      fail(ann, "line " + std::to_string(ln) + ": bad file name '" + file + "'");
    l.files.push_back(path_join(images, file));
    l.labels.push_back(it->second);
  }
  if (l.files.empty()) fail(ann, "no validation images listed");
  return l;
}

Dataset decode(const Listing& l, int64_t classes) {
  Dataset d;
  d.name = "tinyimagenet";
  d.classes = classes;
  const int64_t n = static_cast<int64_t>(l.files.size());
  d.images = torch::empty({n, 3, 64, 64}, torch::kUInt8);
  d.labels = torch::from_blob(const_cast<int64_t*>(l.labels.data()), {n}, torch::kInt64).clone();
  decode_all(l.files, d.images);
  return d;
}

}  // namespace

DataSplit load_jpeg_folders(const arch::DataSource& src, int64_t limit) {
  std::string root = src.path;
  if (!is_dir(path_join(root, "train")) && is_dir(path_join(path_join(root, "tiny-imagenet-200"), "train")))
    root = path_join(root, "tiny-imagenet-200");
  const std::string train_dir = path_join(root, "train");
  if (!is_dir(train_dir))
    fail(train_dir, "directory not found (" + src.info->name + " needs " + src.info->files + "; DIR is " + src.path +
                        ")");
  const std::vector<std::string> wnids = class_ids(root, train_dir);
  const auto classes = static_cast<int64_t>(wnids.size());
  DataSplit s;
  s.train = decode(train_listing(train_dir, wnids, limit), classes);
  s.test = decode(val_listing(root, wnids, limit), classes);
  return s;
}

}  // namespace dr::data
