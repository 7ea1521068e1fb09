#include "util/job_registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace dr::util {

namespace fs = std::filesystem;

std::string default_job_directory() {
  std::error_code ec;
  const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path(ec);
  return (base / ("deepreduce-jobs-" + std::to_string(::getuid()))).string();
}

JobRegistry::JobRegistry(const std::string& dir) : dir_(dir.empty() ? default_job_directory() : dir) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const std::string pid = std::to_string(::getpid());
  file_ = (fs::path(dir_) / pid).string();
  // Locked under a temporary name, then renamed: the file never appears
  // unlocked to another job's count (which would take it for a dead one).
  const std::string tmp = file_ + ".new";
  fd_ = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd_ < 0) return;
  if (::flock(fd_, LOCK_EX) != 0 || std::rename(tmp.c_str(), file_.c_str()) != 0) {
    ::close(fd_);
    fd_ = -1;
    std::remove(tmp.c_str());
  }
}

JobRegistry::~JobRegistry() {
  if (fd_ < 0) return;
  std::remove(file_.c_str());
  ::close(fd_);
}

int JobRegistry::live_jobs() const {
  if (fd_ < 0) return 1;
  int live = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    if (path == file_) {
      ++live;
      continue;
    }
    if (it->path().extension() == ".new") continue;  // a job registering right now
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0)
      std::remove(path.c_str());  // nobody holds it: its job is gone
    else
      ++live;
    ::close(fd);
  }
  return std::max(live, 1);
}

}  // namespace dr::util
