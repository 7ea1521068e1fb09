#pragma once
// A key file that is a named pipe (mkfifo): the dealer writes a party's key
// file into it while the party reads, block by block, so no key touches the
// disk (`pi deal --stream`, and `pi run` without --keys). The bytes are those
// of a key file (keys.h) in order; a pipe holds about 1 MiB, so the dealer
// runs at most a block ahead of its reader.
//
// Both ends wait with a finite timeout (poll(2)): the writer for a reader to
// open the pipe and for room in it, the reader for each byte. The time each
// spends blocked is counted (wait_s), so the dealer's time and a party's
// preprocessing can be reported without the time they waited for each other.
#include <cstddef>
#include <cstdint>
#include <string>

namespace dr::mpc {

// Whether `path` exists and is a named pipe.
bool is_named_pipe(const std::string& path);

class PipeReader {
 public:
  // Opens without waiting for a writer; `what` names the pipe in errors.
  PipeReader(const std::string& path, double timeout_s, std::string what);
  ~PipeReader();
  PipeReader(const PipeReader&) = delete;
  PipeReader& operator=(const PipeReader&) = delete;
  // Exactly n bytes; std::runtime_error when the writer closes first or none
  // arrives within the timeout.
  void read(uint8_t* out, size_t n);
  void skip(uint64_t n);  // reads and drops n bytes
  uint64_t position() const { return position_; }
  double wait_s() const { return wait_s_; }

 private:
  int fd_ = -1;
  double timeout_s_;
  std::string what_;
  uint64_t position_ = 0;
  double wait_s_ = 0;
};

class PipeWriter {
 public:
  // Waits (up to the timeout) for a reader to open the pipe. Ignores SIGPIPE
  // in this process: a reader that goes away is an error of write(), named.
  PipeWriter(const std::string& path, double timeout_s, std::string what);
  ~PipeWriter();
  PipeWriter(const PipeWriter&) = delete;
  PipeWriter& operator=(const PipeWriter&) = delete;
  void write(const uint8_t* data, size_t n);
  void close();
  double wait_s() const { return wait_s_; }

 private:
  int fd_ = -1;
  double timeout_s_;
  std::string what_;
  double wait_s_ = 0;
};

}  // namespace dr::mpc
