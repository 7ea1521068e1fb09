#include "data/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace dr::data {

namespace fs = std::filesystem;

void fail(const std::string& path, const std::string& problem) { throw DataError(path + ": " + problem); }

bool exists(const std::string& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Size of a regular file; DataError when missing or not a file.
int64_t file_size(const std::string& path, const std::string& hint) {
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


}  // namespace dr::data
