#pragma once
// Concurrent deepreduce jobs on one machine, so they can share its cores:
// each training process registers here for its lifetime, and one whose thread
// count is automatic uses cores / jobs threads (two jobs that each take every
// core run 3.6x slower than one after the other, docs/performance.md).
//
// A job is a file named by its process id in a per-user directory
// (/dev/shm/deepreduce-jobs-<uid>, else the temporary directory), held under
// an flock for as long as the process lives: a killed job's lock goes with
// it, so the count never includes dead processes and no clean-up is needed.
#include <string>

namespace dr::util {

class JobRegistry {
 public:
  // Registers this process (`dir` "" = the default directory). Never throws:
  // where the directory cannot be used, the job counts itself alone.
  explicit JobRegistry(const std::string& dir = "");
  ~JobRegistry();
  JobRegistry(const JobRegistry&) = delete;
  JobRegistry& operator=(const JobRegistry&) = delete;

  // Live registered jobs, this one included (>= 1). Removes dead jobs' files.
  int live_jobs() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, file_;
  int fd_ = -1;
};

// The default registry directory.
std::string default_job_directory();

}  // namespace dr::util
