#include "util/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "util/fs.h"
#include "util/strings.h"

namespace dr::util {

namespace fs = std::filesystem;

const char* const kRunLockName = ".deepreduce.lock";

namespace {

// `dir` and its ancestors that do not exist yet, outermost first.
std::vector<std::string> missing_dirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::path p = fs::absolute(dir, ec).lexically_normal(); !p.empty() && !fs::exists(p, ec);
       p = p.parent_path()) {
    out.insert(out.begin(), p.string());
    if (p == p.parent_path()) break;
  }
  return out;
}

// The PID the holder wrote into the lock file; it writes it right after
// locking, so an empty file is read again for a moment.
std::string holder_pid(const std::string& path) {
  for (int i = 0; i < 40; ++i) {
    std::string pid;
    try {
      pid = trim(read_file(path));
    } catch (const std::exception&) {
    }
    if (!pid.empty()) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return "unknown";
}

bool same_file(int fd, const std::string& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

RunLock::RunLock(const std::string& dir) : path_(path_join(dir, kRunLockName)) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw std::runtime_error("'" + dir + "' is a file, not a directory: a run directory cannot be made there");
  // Tries again while another process removes the file (or the directory it
  // made) between our open and our lock: the lock must be on the file the
  // path names now, or two writers could each hold a lock.
  for (int attempt = 0; fd_ < 0; ++attempt) {
    try {
      for (auto& d : missing_dirs(dir)) created_.push_back(std::move(d));
      make_dirs(dir);
    } catch (...) {
      release();
      throw;
    }
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    const int err = errno;
    if (fd < 0 && err == ENOENT && attempt < 20) continue;
    if (fd < 0) {
      release();
      throw std::runtime_error("cannot create the lock file '" + path_ + "': " + std::strerror(err));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int lerr = errno;
      ::close(fd);
      release();
      if (lerr == EWOULDBLOCK)
        throw DirectoryBusy("run directory '" + dir + "' is in use by another deepreduce process (PID " +
                            holder_pid(path_) + ", which holds '" + path_ +
                            "'): wait for it to finish, or stop it; two writers would mix their files");
      throw std::runtime_error("cannot lock '" + path_ + "': " + std::strerror(lerr));
    }
    if (same_file(fd, path_))
      fd_ = fd;
    else
      ::close(fd);
    if (fd_ < 0 && attempt >= 20) {
      release();
      throw std::runtime_error("cannot lock '" + path_ + "': it is removed and made again by other processes");
    }
  }
  // Best effort: the lock holds without it, a refused writer then says "PID unknown".
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

RunLock::~RunLock() { release(); }

void RunLock::release() {
  if (fd_ >= 0) {
    // Removed while still locked: whoever opened this file meanwhile finds
    // it gone once it gets the lock (same_file) and makes a new one.
    ::unlink(path_.c_str());
    ::close(fd_);
    fd_ = -1;
  }
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) ::rmdir(it->c_str());  // only if still empty
  created_.clear();
}

bool is_empty_but_lock(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  if (!fs::is_directory(dir, ec)) return false;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename() != kRunLockName) return false;
  return !ec;
}

}  // namespace dr::util
