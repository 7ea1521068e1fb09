// JPEG decoding and encoding through libjpeg: corrupt or truncated data is an
// error (not papered over), decoding runs on several threads.
#include <jpeglib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>

#include "data/files.h"
#include "data/formats.h"
#include "util/strings.h"

namespace dr::data {

namespace {

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
  const std::string ext = util::lower(f.substr(dot + 1));
  return ext == "jpeg" || ext == "jpg";
}


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
