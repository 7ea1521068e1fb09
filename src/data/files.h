#pragma once
// File helpers of the dataset readers: every error names the file (DataError).
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "util/fs.h"

namespace dr::data {

using util::path_join;

[[noreturn]] void fail(const std::string& path, const std::string& problem);
bool exists(const std::string& path);
bool is_dir(const std::string& path);
// Size of a regular file; DataError when missing (with `hint` appended) or not a file.
int64_t file_size(const std::string& path, const std::string& hint = "");
// The whole file; DataError when missing or unreadable.
std::string read_bytes(const std::string& path);

}  // namespace dr::data
