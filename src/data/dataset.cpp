// Dataset readers and writers: CIFAR-10/100 binary, TinyImageNet JPEG folders
// (libjpeg, decoded in parallel), Fashion-MNIST gzipped IDX (zlib), and a
// deterministic learnable synthetic set.

#include "data/dataset.h"

#include <jpeglib.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>

#include "util/fs.h"

namespace dr::data {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw DataError(path + ": " + problem);
}

std::string join(const std::string& a, const std::string& b) { return (fs::path(a) / b).string(); }

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Size of a regular file; DataError when missing or not a file.
int64_t file_size(const std::string& path, const std::string& hint = "") {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail(path, "file not found" + hint);
  if (!fs::is_regular_file(st)) fail(path, "not a regular file");
  auto n = fs::file_size(path, ec);
  if (ec) fail(path, "cannot stat: " + ec.message());
  return static_cast<int64_t>(n);
}

std::string read_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (!exists(path)) fail(path, "file not found");
    fail(path, std::string("cannot open: ") + std::strerror(errno));
  }
  std::string out;
  char buf[1 << 16];
  size_t r;
  while ((r = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, r);
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) fail(path, "read error");
  return out;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// ---------------------------------------------------------------- random --
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
int64_t uniform_int(uint64_t& s, int64_t lo, int64_t hi) {  // [lo, hi]
  return lo + static_cast<int64_t>((splitmix(s) >> 11) % static_cast<uint64_t>(hi - lo + 1));
}

// ----------------------------------------------------------------- CIFAR --
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
  if (!exists(join(dir, probe)) && exists(join(join(dir, sub), probe))) return join(dir, sub);
  return dir;
}

DataSplit load_cifar10(const std::string& dir0, int64_t limit) {
  const std::string dir = pick_dir(dir0, "cifar-10-batches-bin", "data_batch_1.bin");
  const std::string hint =
      " (cifar10 needs data_batch_1..5.bin and test_batch.bin in " + dir0 + " or " + dir0 + "/cifar-10-batches-bin)";
  std::vector<std::string> train;
  for (int i = 1; i <= 5; ++i) train.push_back(join(dir, "data_batch_" + std::to_string(i) + ".bin"));
  DataSplit s;
  s.train = read_cifar("cifar10", train, 1, 0, 10, limit, hint);
  s.test = read_cifar("cifar10", {join(dir, "test_batch.bin")}, 1, 0, 10, limit, hint);
  return s;
}

DataSplit load_cifar100(const std::string& dir0, int64_t limit) {
  const std::string dir = pick_dir(dir0, "cifar-100-binary", "train.bin");
  const std::string hint = " (cifar100 needs train.bin and test.bin in " + dir0 + " or " + dir0 + "/cifar-100-binary)";
  DataSplit s;
  s.train = read_cifar("cifar100", {join(dir, "train.bin")}, 2, 1, 100, limit, hint);
  s.test = read_cifar("cifar100", {join(dir, "test.bin")}, 2, 1, 100, limit, hint);
  return s;
}

// ------------------------------------------------------------------- IDX --
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) {
      if (!exists(path)) fail(path, "file not found");
      fail(path, std::string("cannot open: ") + std::strerror(errno));
    }
    gzbuffer(f_, 1 << 17);
  }
  ~GzReader() {
    if (f_) gzclose(f_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  // Reads up to n bytes; returns how many (short only at the end of the data).
  int64_t read(void* dst, int64_t n) {
    int64_t got = 0;
    auto* p = static_cast<char*>(dst);
    while (got < n) {
      const unsigned want = static_cast<unsigned>(std::min<int64_t>(n - got, 1 << 30));
      const int r = gzread(f_, p + got, want);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        fail(path_, std::string("corrupt gzip data: ") + (msg ? msg : "unknown error"));
      }
      if (r == 0) break;
      got += r;
    }
    return got;
  }
  uint32_t u32(const char* what) {
    unsigned char b[4];
    if (read(b, 4) != 4) fail(path_, std::string("truncated IDX header (") + what + ")");
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  torch::Tensor images;  // [take, 1, rows, cols]
};

IdxImages read_idx_images(const std::string& path, int64_t limit) {
  GzReader r(path);
  const uint32_t magic = r.u32("magic");
  if (magic != 2051)
    fail(path, "bad IDX magic " + std::to_string(magic) + ", expected 2051 (uint8 images, 3 dimensions)");
  IdxImages out;
  out.count = r.u32("image count");
  out.rows = r.u32("rows");
  out.cols = r.u32("cols");
  if (out.rows < 1 || out.cols < 1 || out.rows > 4096 || out.cols > 4096)
    fail(path, "implausible image size " + std::to_string(out.rows) + "x" + std::to_string(out.cols));
  const int64_t take = limit > 0 ? std::min(limit, out.count) : out.count;
  const int64_t px = out.rows * out.cols;
  // Read in chunks so that a lying header cannot make us allocate far more
  // than the file holds before we notice.
  std::vector<uint8_t> data;
  const int64_t need = take * px;
  data.reserve(static_cast<size_t>(std::min<int64_t>(need, int64_t(64) << 20)));
  while (static_cast<int64_t>(data.size()) < need) {
    const int64_t chunk = std::min<int64_t>(need - static_cast<int64_t>(data.size()), int64_t(16) << 20);
    const size_t old = data.size();
    data.resize(old + static_cast<size_t>(chunk));
    const int64_t got = r.read(data.data() + old, chunk);
    if (got < chunk)
      fail(path, "truncated: header says " + std::to_string(out.count) + " images of " + std::to_string(out.rows) +
                     "x" + std::to_string(out.cols) + " but the data ends after " +
                     std::to_string((old + got) / px) + " images");
  }
  out.images = torch::empty({take, 1, out.rows, out.cols}, torch::kUInt8);
  if (need > 0) std::memcpy(out.images.data_ptr<uint8_t>(), data.data(), static_cast<size_t>(need));
  return out;
}

std::pair<int64_t, torch::Tensor> read_idx_labels(const std::string& path, int64_t limit, int64_t classes) {
  GzReader r(path);
  const uint32_t magic = r.u32("magic");
  if (magic != 2049) fail(path, "bad IDX magic " + std::to_string(magic) + ", expected 2049 (uint8 labels, 1 dimension)");
  const int64_t count = r.u32("label count");
  const int64_t take = limit > 0 ? std::min(limit, count) : count;
  std::vector<uint8_t> data(static_cast<size_t>(std::min<int64_t>(take, int64_t(1) << 28)));
  if (static_cast<int64_t>(data.size()) < take) fail(path, "implausible label count " + std::to_string(count));
  const int64_t got = r.read(data.data(), take);
  if (got < take)
    fail(path, "truncated: header says " + std::to_string(count) + " labels but the data ends after " +
                   std::to_string(got));
  auto labels = torch::empty({take}, torch::kInt64);
  int64_t* l = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < take; ++i) {
    if (data[i] >= classes)
      fail(path, "label " + std::to_string(i) + " is " + std::to_string(data[i]) + ", outside 0.." +
                     std::to_string(classes - 1));
    l[i] = data[i];
  }
  return {count, labels};
}

std::string idx_file(const std::string& dir, const std::string& base) {
  const std::string gz = join(dir, base + ".gz"), raw = join(dir, base);
  if (exists(gz)) return gz;
  if (exists(raw)) return raw;
  fail(gz, "file not found (fashion-mnist needs train-images-idx3-ubyte, train-labels-idx1-ubyte, "
           "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not, in " + dir + ")");
}

Dataset read_idx_pair(const std::string& dir, const std::string& prefix, int64_t limit) {
  const std::string ip = idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string lp = idx_file(dir, prefix + "-labels-idx1-ubyte");
  IdxImages im = read_idx_images(ip, limit);
  auto [lcount, labels] = read_idx_labels(lp, limit, 10);
  if (lcount != im.count)
    throw DataError(ip + " and " + lp + ": " + std::to_string(im.count) + " images but " + std::to_string(lcount) +
                    " labels");
  Dataset d;
  d.name = "fashion-mnist";
  d.classes = 10;
  d.images = im.images;
  d.labels = labels;
  return d;
}

DataSplit load_fashion(const std::string& dir, int64_t limit) {
  DataSplit s;
  s.train = read_idx_pair(dir, "train", limit);
  s.test = read_idx_pair(dir, "t10k", limit);
  if (s.train.images.sizes().slice(1) != s.test.images.sizes().slice(1))
    throw DataError(dir + ": train and test images differ in size");
  return s;
}

// ------------------------------------------------------------------ JPEG --
struct JpegErr {
  jpeg_error_mgr pub;
  std::jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
};

extern "C" void dr_jpeg_error_exit(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jb, 1);
}

// Warnings (corrupt or truncated data, which libjpeg would paper over) are
// errors too; trace messages are dropped.
extern "C" void dr_jpeg_emit_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  auto* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  std::longjmp(e->jb, 2);
}

// libjpeg's errors and warnings as a longjmp to e.jb (the caller's setjmp)
// with the message in e.msg.
jpeg_error_mgr* errors_to_longjmp(JpegErr& e) {
  std::memset(&e, 0, sizeof e);
  jpeg_std_error(&e.pub);
  e.pub.error_exit = dr_jpeg_error_exit;
  e.pub.emit_message = dr_jpeg_emit_message;
  return &e.pub;
}

// Decodes into `out` (H*W*comps, interleaved). No C++ objects with
// destructors live in this frame across setjmp/longjmp. Returns false with
// `err` set on failure.
bool decode_jpeg_mem(const unsigned char* data, size_t size, int expect_h, int expect_w, std::vector<uint8_t>& out,
                     int& h, int& w, int& comps, char* err, size_t errlen) {
  jpeg_decompress_struct cinfo;
  JpegErr jerr;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = errors_to_longjmp(jerr);
  if (setjmp(jerr.jb)) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(err, errlen, "corrupt JPEG: %s", jerr.msg);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (cinfo.num_components == 3 && (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB)) {
    cinfo.out_color_space = JCS_RGB;
  } else {
    std::snprintf(err, errlen, "unsupported JPEG colour space (%d components)", cinfo.num_components);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if ((expect_h > 0 && static_cast<int>(cinfo.image_height) != expect_h) ||
      (expect_w > 0 && static_cast<int>(cinfo.image_width) != expect_w)) {
    std::snprintf(err, errlen, "image is %ux%u (WxH), expected %dx%d", cinfo.image_width, cinfo.image_height,
                  expect_w, expect_h);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (cinfo.image_width > 16384 || cinfo.image_height > 16384) {
    std::snprintf(err, errlen, "implausible JPEG size %ux%u", cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_start_decompress(&cinfo);
  h = static_cast<int>(cinfo.output_height);
  w = static_cast<int>(cinfo.output_width);
  comps = cinfo.output_components;
  out.resize(static_cast<size_t>(h) * w * comps);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out.data() + static_cast<size_t>(cinfo.output_scanline) * w * comps;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

// Decodes `path` into dst (uint8 [3, eh, ew]); eh/ew > 0.
void decode_jpeg_file(const std::string& path, int eh, int ew, uint8_t* dst, std::vector<uint8_t>& scratch) {
  const std::string bytes = read_bytes(path);
  if (bytes.empty()) fail(path, "file is empty");
  int h = 0, w = 0, comps = 0;
  char err[JMSG_LENGTH_MAX + 64];
  if (!decode_jpeg_mem(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), eh, ew, scratch, h, w,
                       comps, err, sizeof err))
    fail(path, err);
  const int64_t plane = static_cast<int64_t>(h) * w;
  for (int c = 0; c < 3; ++c) {
    const int sc = comps == 1 ? 0 : c;
    uint8_t* o = dst + c * plane;
    for (int64_t i = 0; i < plane; ++i) o[i] = scratch[i * comps + sc];
  }
}

// Decodes files[i] into images[i] ([n, 3, h, w]) on 2+ threads.
void decode_all(const std::vector<std::string>& files, torch::Tensor& images) {
  const int64_t n = static_cast<int64_t>(files.size());
  const int eh = static_cast<int>(images.size(2)), ew = static_cast<int>(images.size(3));
  const int64_t per = 3LL * eh * ew;
  uint8_t* base = images.data_ptr<uint8_t>();
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  int64_t err_idx = std::numeric_limits<int64_t>::max();
  std::string err_msg;
  auto work = [&]() {
    std::vector<uint8_t> scratch;
    while (!failed.load()) {
      const int64_t i = next.fetch_add(1);
      if (i >= n) break;
      try {
        decode_jpeg_file(files[i], eh, ew, base + i * per, scratch);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(mu);
        if (i < err_idx) {
          err_idx = i;
          err_msg = e.what();
        }
        failed = true;
      }
    }
  };
  const unsigned hw = std::max(2u, std::thread::hardware_concurrency());
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>({static_cast<int64_t>(hw), 16, n}));
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < nt; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  if (failed) throw DataError(err_msg);
}

bool is_jpeg_name(const std::string& f) {
  auto dot = f.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = f.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return ext == "jpeg" || ext == "jpg";
}

DataSplit load_tiny(const std::string& dir0, int64_t limit) {
  std::string root = dir0;
  if (!is_dir(join(root, "train")) && is_dir(join(join(root, "tiny-imagenet-200"), "train")))
    root = join(root, "tiny-imagenet-200");
  const std::string train_dir = join(root, "train");
  if (!is_dir(train_dir))
    fail(train_dir, "directory not found (tinyimagenet needs train/<wnid>/images/*.JPEG, val/val_annotations.txt "
                    "and val/images/*.JPEG in " + dir0 + ")");
  // Class list.
  std::vector<std::string> wnids;
  const std::string wn = join(root, "wnids.txt");
  if (exists(wn)) {
    std::istringstream in(read_bytes(wn));
    std::string line;
    while (std::getline(in, line)) {
      line = trim(line);
      if (!line.empty()) wnids.push_back(line);
    }
    if (wnids.empty()) fail(wn, "no class ids");
  } else {
    std::error_code ec;
    for (auto it = fs::directory_iterator(train_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->is_directory()) wnids.push_back(it->path().filename().string());
    if (ec) fail(train_dir, "cannot list: " + ec.message());
    std::sort(wnids.begin(), wnids.end());
    if (wnids.empty()) fail(train_dir, "no class directories");
  }
  std::unordered_map<std::string, int64_t> index;
  for (size_t i = 0; i < wnids.size(); ++i)
    if (!index.emplace(wnids[i], static_cast<int64_t>(i)).second) fail(wn, "duplicate class id " + wnids[i]);
  // Train files per class, then round-robin over the classes.
  std::vector<std::vector<std::string>> per_class(wnids.size());
  size_t longest = 0;
  for (size_t c = 0; c < wnids.size(); ++c) {
    const std::string d = join(join(train_dir, wnids[c]), "images");
    if (!is_dir(d)) fail(d, "directory not found (class " + wnids[c] + ")");
    std::error_code ec;
    for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string f = it->path().filename().string();
      if (is_jpeg_name(f)) per_class[c].push_back(f);
    }
    if (ec) fail(d, "cannot list: " + ec.message());
    std::sort(per_class[c].begin(), per_class[c].end());
    for (auto& f : per_class[c]) f = join(d, f);
    longest = std::max(longest, per_class[c].size());
  }
  std::vector<std::string> train_files;
  std::vector<int64_t> train_labels;
  for (size_t r = 0; r < longest; ++r)
    for (size_t c = 0; c < wnids.size(); ++c)
      if (r < per_class[c].size()) {
        train_files.push_back(per_class[c][r]);
        train_labels.push_back(static_cast<int64_t>(c));
      }
  if (train_files.empty()) fail(train_dir, "no JPEG images");
  if (limit > 0 && static_cast<int64_t>(train_files.size()) > limit) {
    train_files.resize(limit);
    train_labels.resize(limit);
  }
  // Validation split.
  const std::string ann = join(join(root, "val"), "val_annotations.txt");
  const std::string val_images = join(join(root, "val"), "images");
  std::vector<std::string> test_files;
  std::vector<int64_t> test_labels;
  {
    std::istringstream in(read_bytes(ann));
    std::string line;
    int64_t ln = 0;
    while (std::getline(in, line) && (limit <= 0 || static_cast<int64_t>(test_files.size()) < limit)) {
      ++ln;
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
      test_files.push_back(join(val_images, file));
      test_labels.push_back(it->second);
    }
    if (test_files.empty()) fail(ann, "no validation images listed");
  }
  auto make = [&](const std::vector<std::string>& files, const std::vector<int64_t>& labels) {
    Dataset d;
    d.name = "tinyimagenet";
    d.classes = static_cast<int64_t>(wnids.size());
    const int64_t n = static_cast<int64_t>(files.size());
    d.images = torch::empty({n, 3, 64, 64}, torch::kUInt8);
    d.labels = torch::from_blob(const_cast<int64_t*>(labels.data()), {n}, torch::kInt64).clone();
    decode_all(files, d.images);
    return d;
  };
  DataSplit s;
  s.train = make(train_files, train_labels);
  s.test = make(test_files, test_labels);
  return s;
}

// ------------------------------------------------------------- synthetic --
int64_t parse_int(const std::string& s, const std::string& source, int64_t lo, int64_t hi) {
  const std::string what = "synthetic source '" + source + "'";
  if (s.empty() || s.size() > 12 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw DataError(what + ": '" + s + "' is not a number (expected synthetic[:CxHxW[:CLASSES[:N]]])");
  const int64_t v = std::stoll(s);
  if (v < lo || v > hi)
    throw DataError(what + ": " + s + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  while (true) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return out;
}

// Each class: a colour offset per channel, a triangle-wave stripe pattern
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

DataSplit load_synthetic(const std::string& arg, int64_t limit) {
  int64_t C = 3, H = 32, W = 32, classes = 10, n = 512;
  const std::string source = arg.empty() ? "synthetic" : "synthetic:" + arg;
  if (!arg.empty()) {
    auto parts = split(arg, ':');
    if (parts.size() > 3) throw DataError("synthetic source '" + source + "': expected synthetic[:CxHxW[:CLASSES[:N]]]");
    if (!parts[0].empty()) {
      auto dims = split(parts[0], 'x');
      if (dims.size() != 3)
        throw DataError("synthetic source '" + source + "': shape '" + parts[0] + "' is not CxHxW");
      C = parse_int(dims[0], source, 1, 64);
      H = parse_int(dims[1], source, 1, 1024);
      W = parse_int(dims[2], source, 1, 1024);
    }
    if (parts.size() > 1 && !parts[1].empty()) classes = parse_int(parts[1], source, 1, 100000);
    if (parts.size() > 2 && !parts[2].empty()) n = parse_int(parts[2], source, 1, 100000000);
  }
  if (n * C * H * W > (int64_t(1) << 33)) throw DataError("synthetic source '" + source + "': too large");
  int64_t ntest = std::max<int64_t>(1, n / 4);
  if (limit > 0) {
    n = std::min(n, limit);
    ntest = std::min(ntest, limit);
  }
  DataSplit s;
  s.train = make_synthetic(C, H, W, classes, n, 1);
  s.test = make_synthetic(C, H, W, classes, ntest, 2);
  return s;
}

}  // namespace

// ---------------------------------------------------------------- public --
int64_t Dataset::size() const { return images.defined() ? images.size(0) : 0; }
int64_t Dataset::channels() const { return images.defined() && images.dim() == 4 ? images.size(1) : 0; }
int64_t Dataset::height() const { return images.defined() && images.dim() == 4 ? images.size(2) : 0; }
int64_t Dataset::width() const { return images.defined() && images.dim() == 4 ? images.size(3) : 0; }

std::vector<std::string> dataset_names() { return {"cifar10", "cifar100", "tinyimagenet", "fashion-mnist", "synthetic"}; }

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
  const auto colon = source.find(':');
  std::string name = source.substr(0, colon);
  const std::string path = colon == std::string::npos ? "" : source.substr(colon + 1);
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (name == "fashion_mnist" || name == "fashionmnist" || name == "fmnist") name = "fashion-mnist";
  if (name == "tiny-imagenet" || name == "tiny_imagenet") name = "tinyimagenet";
  if (limit < 0) limit = 0;
  DataSplit s;
  if (name == "cifar10") {
    s = load_cifar10(path.empty() ? "data/cifar10" : path, limit);
  } else if (name == "cifar100") {
    s = load_cifar100(path.empty() ? "data/cifar100" : path, limit);
  } else if (name == "tinyimagenet") {
    s = load_tiny(path.empty() ? "data/tinyimagenet" : path, limit);
  } else if (name == "fashion-mnist") {
    s = load_fashion(path.empty() ? "/usr/share/datasets/fashion-mnist" : path, limit);
  } else if (name == "synthetic") {
    s = load_synthetic(path, limit);
  } else {
    std::string names;
    for (const auto& n : dataset_names()) names += (names.empty() ? "" : ", ") + n;
    throw DataError("dataset source '" + source + "': unknown dataset '" + name + "' (expected one of " + names +
                    ", optionally followed by :PATH)");
  }
  if (s.train.size() == 0) throw DataError("dataset source '" + source + "': no training images");
  if (s.test.size() == 0) throw DataError("dataset source '" + source + "': no test images");
  compute_mean_std(s.train);
  s.test.mean = s.train.mean;
  s.test.std = s.train.std;
  return s;
}

// --------------------------------------------------------------- writers --
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

namespace {
void put_u32(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v >> 24));
  s.push_back(static_cast<char>(v >> 16));
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v));
}
void write_gz(const std::string& path, const std::string& content) {
  util::make_dirs(fs::path(path).parent_path().string());
  const std::string tmp = path + ".tmp";
  gzFile f = gzopen(tmp.c_str(), "wb6");
  if (!f) fail(path, std::string("cannot write: ") + std::strerror(errno));
  size_t done = 0;
  bool ok = true;
  while (ok && done < content.size()) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(content.size() - done, 1u << 30));
    ok = gzwrite(f, content.data() + done, chunk) == static_cast<int>(chunk);
    done += chunk;
  }
  if (gzclose(f) != Z_OK) ok = false;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, "cannot write");
  }
}
}  // namespace

void write_idx_gz(const std::string& images_path, const std::string& labels_path, const torch::Tensor& images_u8,
                  const torch::Tensor& labels) {
  if (images_u8.scalar_type() != torch::kUInt8 || !(images_u8.dim() == 3 || (images_u8.dim() == 4 && images_u8.size(1) == 1)))
    throw std::invalid_argument("write_idx_gz(" + images_path + "): images must be uint8 [N, H, W] or [N, 1, H, W]");
  const int64_t n = images_u8.size(0), h = images_u8.size(-2), w = images_u8.size(-1);
  if (labels.numel() != n) throw std::invalid_argument("write_idx_gz(" + images_path + "): images/labels count mismatch");
  auto img = images_u8.contiguous().cpu();
  auto lab = labels.to(torch::kInt64).contiguous().cpu();
  std::string a;
  put_u32(a, 2051);
  put_u32(a, static_cast<uint32_t>(n));
  put_u32(a, static_cast<uint32_t>(h));
  put_u32(a, static_cast<uint32_t>(w));
  a.append(reinterpret_cast<const char*>(img.data_ptr<uint8_t>()), static_cast<size_t>(n * h * w));
  std::string b;
  put_u32(b, 2049);
  put_u32(b, static_cast<uint32_t>(n));
  const int64_t* l = lab.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (l[i] < 0 || l[i] > 255) throw std::invalid_argument("write_idx_gz(" + labels_path + "): label out of range");
    b.push_back(static_cast<char>(l[i]));
  }
  write_gz(images_path, a);
  write_gz(labels_path, b);
}

namespace {
// Compresses interleaved rows; false with err on failure (no C++ objects with
// destructors in this frame across setjmp/longjmp).
bool encode_jpeg_mem(const uint8_t* hwc, int h, int w, int comps, int quality, unsigned char** out,
                     unsigned long* outlen, char* err, size_t errlen) {
  jpeg_compress_struct cinfo;
  JpegErr jerr;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = errors_to_longjmp(jerr);
  if (setjmp(jerr.jb)) {
    jpeg_destroy_compress(&cinfo);
    std::snprintf(err, errlen, "JPEG encoding failed: %s", jerr.msg);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, out, outlen);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = comps;
  cinfo.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(hwc) + static_cast<size_t>(cinfo.next_scanline) * w * comps;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}
}  // namespace

void write_jpeg(const std::string& path, const torch::Tensor& image_u8_chw, int quality) {
  if (image_u8_chw.scalar_type() != torch::kUInt8 || image_u8_chw.dim() != 3 ||
      !(image_u8_chw.size(0) == 1 || image_u8_chw.size(0) == 3) || image_u8_chw.size(1) < 1 || image_u8_chw.size(2) < 1)
    throw std::invalid_argument("write_jpeg(" + path + "): image must be uint8 [1 or 3, H, W]");
  const int comps = static_cast<int>(image_u8_chw.size(0));
  const int h = static_cast<int>(image_u8_chw.size(1)), w = static_cast<int>(image_u8_chw.size(2));
  auto hwc = image_u8_chw.permute({1, 2, 0}).contiguous().cpu();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  char err[JMSG_LENGTH_MAX + 64];
  const bool ok = encode_jpeg_mem(hwc.data_ptr<uint8_t>(), h, w, comps, std::clamp(quality, 1, 100), &buf, &len, err,
                                  sizeof err);
  std::string bytes;
  if (ok) bytes.assign(reinterpret_cast<const char*>(buf), len);
  std::free(buf);
  if (!ok) fail(path, err);
  util::write_file_atomic(path, bytes);
}

torch::Tensor read_jpeg(const std::string& path) {
  const std::string bytes = read_bytes(path);
  if (bytes.empty()) fail(path, "file is empty");
  std::vector<uint8_t> hwc;
  char err[JMSG_LENGTH_MAX + 64];
  int h = 0, w = 0, comps = 0;
  if (!decode_jpeg_mem(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0, 0, hwc, h, w, comps, err,
                       sizeof err))
    fail(path, err);
  auto out = torch::empty({3, h, w}, torch::kUInt8);
  uint8_t* o = out.data_ptr<uint8_t>();
  const int64_t plane = static_cast<int64_t>(h) * w;
  for (int c = 0; c < 3; ++c)
    for (int64_t i = 0; i < plane; ++i) o[c * plane + i] = hwc[i * comps + (comps == 1 ? 0 : c)];
  return out;
}

}  // namespace dr::data
