// IDX files (MNIST's format, Fashion-MNIST's), gzipped or not, read through zlib.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>
#include <filesystem>

#include "data/files.h"
#include "data/formats.h"

namespace dr::data {

namespace {

namespace fs = std::filesystem;

// A file read through zlib's inflate: a gzip file (one member, or several
// concatenated, as gzip allows) or, without the gzip magic, the raw bytes.
// Unlike gzread, which skips whatever follows a gzip member when it is not
// another member, anything after the last member is an error: a valid
// member is accepted, other bytes are "trailing data".
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), in_(1 << 17) {
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) {
      if (!exists(path)) fail(path, "file not found");
      fail(path, std::string("cannot open: ") + std::strerror(errno));
    }
    fill();
    gzip_ = avail_ >= 2 && static_cast<unsigned char>(in_[0]) == 0x1f && static_cast<unsigned char>(in_[1]) == 0x8b;
    if (gzip_ && inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail(path, "cannot start zlib");
  }
  ~GzReader() {
    if (gzip_) inflateEnd(&z_);
    if (f_) std::fclose(f_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  // Reads up to n bytes; returns how many (short only at the end of the data).
  int64_t read(void* dst, int64_t n) {
    auto* p = static_cast<char*>(dst);
    int64_t got = 0;
    while (got < n) {
      if (avail_ == 0 && !fill()) {
        if (gzip_ && !member_done_) fail(path_, "corrupt gzip data: unexpected end of file (a truncated gzip stream)");
        break;
      }
      if (!gzip_) {
        const int64_t k = std::min<int64_t>(n - got, static_cast<int64_t>(avail_));
        std::memcpy(p + got, in_.data() + pos_, static_cast<size_t>(k));
        pos_ += static_cast<size_t>(k), avail_ -= static_cast<size_t>(k), got += k;
        continue;
      }
      if (member_done_) next_member();  // more input after a member: another member, or an error
      z_.next_in = reinterpret_cast<Bytef*>(in_.data() + pos_);
      z_.avail_in = static_cast<uInt>(avail_);
      z_.next_out = reinterpret_cast<Bytef*>(p + got);
      z_.avail_out = static_cast<uInt>(std::min<int64_t>(n - got, 1 << 30));
      const uInt out_before = z_.avail_out;
      const int r = inflate(&z_, Z_NO_FLUSH);
      pos_ += avail_ - z_.avail_in;
      avail_ = z_.avail_in;
      got += out_before - z_.avail_out;
      if (r == Z_STREAM_END) {
        member_done_ = true;
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        fail(path_, std::string("corrupt gzip data: ") + (z_.msg ? z_.msg : "error " + std::to_string(r)));
      }
    }
    return got;
  }
  // Reads the `remaining` payload bytes after what was used (a --limit stops
  // early) and checks that the file ends exactly there: a size that does not
  // match the header, trailing bytes, or a gzip stream whose trailer (CRC and
  // length) is missing or wrong are errors naming the file. `what` describes
  // the whole payload the header declares.
  void expect_end(int64_t remaining, const std::string& what) {
    std::vector<char> scratch(static_cast<size_t>(std::min<int64_t>(std::max<int64_t>(remaining, 1), 1 << 20)));
    for (int64_t left = remaining; left > 0;) {
      const int64_t chunk = std::min<int64_t>(left, static_cast<int64_t>(scratch.size()));
      if (read(scratch.data(), chunk) < chunk) fail(path_, "truncated: the data ends before the " + what + " its header declares");
      left -= chunk;
    }
    char extra;
    if (read(&extra, 1) != 0) fail(path_, "holds more bytes than the " + what + " its header declares (trailing data)");
  }
  uint32_t u32(const char* what) {
    unsigned char b[4];
    if (read(b, 4) != 4) fail(path_, std::string("truncated IDX header (") + what + ")");
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  }

 private:
  // Refills the input buffer when it is empty; false at the end of the file.
  bool fill() {
    if (avail_ > 0) return true;
    pos_ = 0;
    avail_ = std::fread(in_.data(), 1, in_.size(), f_);
    if (avail_ == 0 && std::ferror(f_)) fail(path_, std::string("read error: ") + std::strerror(errno));
    return avail_ > 0;
  }
  // After a member's end, what follows must be another gzip member.
  void next_member() {
    unsigned char magic[2] = {static_cast<unsigned char>(in_[pos_]), 0};
    bool two = avail_ >= 2;
    if (two) {
      magic[1] = static_cast<unsigned char>(in_[pos_ + 1]);
    } else {
      // The second byte is in the next buffer.
      const int c = std::fgetc(f_);
      if (c != EOF) {
        magic[1] = static_cast<unsigned char>(c);
        two = true;
        std::ungetc(c, f_);
      }
    }
    if (!two || magic[0] != 0x1f || magic[1] != 0x8b)
      fail(path_, "trailing data after the gzip stream (bytes that are not a gzip member)");
    if (inflateReset(&z_) != Z_OK) fail(path_, "cannot restart zlib");
    member_done_ = false;
  }

  std::string path_;
  std::FILE* f_ = nullptr;
  std::vector<char> in_;
  size_t pos_ = 0, avail_ = 0;  // unread input: in_[pos_, pos_ + avail_)
  bool gzip_ = false, member_done_ = false;
  z_stream z_{};
};

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  torch::Tensor images;  // [take, 1, rows, cols]
};

// `want`: the registry's image shape, checked as soon as the header is read.
IdxImages read_idx_images(const std::string& path, int64_t limit, const arch::DataSource& src) {
  GzReader r(path);
  const uint32_t magic = r.u32("magic");
  if (magic != 2051)
    fail(path, "bad IDX magic " + std::to_string(magic) + ", expected 2051 (uint8 images, 3 dimensions)");
  IdxImages out;
  out.count = r.u32("image count");
  out.rows = r.u32("rows");
  out.cols = r.u32("cols");
  const arch::Shape& want = src.info->input.shape;
  if (out.rows != want.h || out.cols != want.w)
    fail(path, "holds " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + " images; " + src.info->name +
                   " images are " + std::to_string(want.h) + "x" + std::to_string(want.w));
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
  r.expect_end((out.count - take) * px, std::to_string(out.count) + " images of " + std::to_string(out.rows) + "x" +
                                           std::to_string(out.cols));
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
  r.expect_end(count - take, std::to_string(count) + " labels");
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

std::string idx_file(const arch::DataSource& src, const std::string& base) {
  const std::string gz = path_join(src.path, base + ".gz"), raw = path_join(src.path, base);
  if (exists(gz)) return gz;
  if (exists(raw)) return raw;
  fail(gz, "file not found (" + src.info->name + " needs " + src.info->files + "; DIR is " + src.path + ")");
}

Dataset read_idx_pair(const arch::DataSource& src, const std::string& prefix, int64_t limit) {
  const std::string ip = idx_file(src, prefix + "-images-idx3-ubyte");
  const std::string lp = idx_file(src, prefix + "-labels-idx1-ubyte");
  IdxImages im = read_idx_images(ip, limit, src);
  auto [lcount, labels] = read_idx_labels(lp, limit, src.info->input.classes);
  if (lcount != im.count)
    throw DataError(ip + " and " + lp + ": " + std::to_string(im.count) + " images but " + std::to_string(lcount) +
                    " labels");
  Dataset d;
  d.name = src.info->name;
  d.classes = src.info->input.classes;
  d.images = im.images;
  d.labels = labels;
  return d;
}

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

DataSplit load_idx(const arch::DataSource& src, int64_t limit) {
  DataSplit s;
  s.train = read_idx_pair(src, "train", limit);
  s.test = read_idx_pair(src, "t10k", limit);
  return s;
}

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

}  // namespace dr::data
