#pragma once
// The one writer of a run directory. Whoever trains in a directory (train,
// resume, prepare_run, the SNL search) holds an flock on DIR/.deepreduce.lock
// for as long as it writes there; a second writer is refused, naming the
// directory and the holder's process id. The lock goes with its process (a
// kill -9 leaves at most an unlocked file, which the next writer takes over),
// and the file is removed when the holder lets go.
#include <stdexcept>
#include <string>
#include <vector>

namespace dr::util {

// The lock file's name inside a run directory: not a file of the run, so
// the "is this directory empty" checks look past it (is_empty_but_lock).
extern const char* const kRunLockName;

// Another process holds the directory's lock (exit 1: try again later).
struct DirectoryBusy : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class RunLock {
 public:
  // Creates `dir` (and missing parents), then takes its lock without waiting.
  // Throws DirectoryBusy naming the directory and the holder's PID, or
  // std::runtime_error naming the path when it cannot be created or locked.
  explicit RunLock(const std::string& dir);
  // Removes the lock file, then the directories the constructor created if
  // they are still empty (a refused or failed run leaves nothing behind).
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  void release();
  std::string path_;
  std::vector<std::string> created_;  // outermost first
  int fd_ = -1;
};

// True when `dir` is missing, empty, or holds nothing but its lock file.
bool is_empty_but_lock(const std::string& dir);

}  // namespace dr::util
