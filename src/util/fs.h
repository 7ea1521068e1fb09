#pragma once
// File helpers shared by every part: atomic writes (temp file + rename), so a
// killed run never leaves a half-written file behind.

#include <string>

namespace dr::util {

// Writes `content` to `path` through `path.tmp.<pid>` and rename(2). Creates
// missing parent directories. Throws std::runtime_error naming the path.
void write_file_atomic(const std::string& path, const std::string& content);

// Whole file as a string. Throws std::runtime_error naming the path.
std::string read_file(const std::string& path);

bool file_exists(const std::string& path);

// (fs::path(dir) / name).string(): "runs/a" + "config.json" -> "runs/a/config.json".
std::string path_join(const std::string& dir, const std::string& name);

// True when `dir` does not exist or is an empty directory.
bool is_empty_or_missing(const std::string& dir);

// Removes the "<name>.tmp.<pid>" files of write_file_atomic in `dir` (not
// below) whose process is gone: what a kill -9 left behind.
void remove_stale_temporaries(const std::string& dir);

// Creates `dir` and its parents. Throws std::runtime_error naming the path.
void make_dirs(const std::string& dir);

}  // namespace dr::util
