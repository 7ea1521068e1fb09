#include "mpc/key_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dr::mpc {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int to_ms(double s) { return static_cast<int>(std::clamp(s * 1000.0, 1.0, 2.0e9)); }

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", s);
  return b;
}

// poll(2) for `events` up to the timeout, adding the time blocked to *wait;
// false on a timeout.
bool wait_for(int fd, short events, double timeout_s, double* wait) {
  const auto t0 = Clock::now();
  for (;;) {
    pollfd p{fd, events, 0};
    const int left = to_ms(timeout_s - since(t0));
    const int r = ::poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    *wait += since(t0);
    if (r < 0) throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
    return r > 0;
  }
}

}  // namespace

bool is_named_pipe(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

// --- reader ------------------------------------------------------------------

PipeReader::PipeReader(const std::string& path, double timeout_s, std::string what)
    : timeout_s_(timeout_s), what_(std::move(what)) {
  // Non-blocking: the open returns at once, and poll() then waits for the
  // writer's bytes (it reports a hang-up only once a writer has come and gone).
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(what_ + ": cannot open: " + std::strerror(errno));
}

PipeReader::~PipeReader() {
  if (fd_ >= 0) ::close(fd_);
}

void PipeReader::read(uint8_t* out, size_t n) {
  while (n > 0) {
    if (!wait_for(fd_, POLLIN, timeout_s_, &wait_s_))
      throw std::runtime_error(what_ + ": no key bytes from the dealer for " + seconds_text(timeout_s_) + " s (at byte " +
                               std::to_string(position_) + ")");
    const ssize_t r = ::read(fd_, out, n);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) throw std::runtime_error(what_ + ": read failed at byte " + std::to_string(position_) + ": " + std::strerror(errno));
    if (r == 0)
      throw std::runtime_error(what_ + ": the dealer closed its key stream after " + std::to_string(position_) +
                               " bytes, before the key set was complete (the dealer failed or was stopped)");
    out += r;
    n -= size_t(r);
    position_ += uint64_t(r);
  }
}

void PipeReader::skip(uint64_t n) {
  std::vector<uint8_t> sink(std::min<uint64_t>(n, 1 << 20));
  while (n > 0) {
    const size_t k = size_t(std::min<uint64_t>(n, sink.size()));
    read(sink.data(), k);
    n -= k;
  }
}

// --- writer ------------------------------------------------------------------

PipeWriter::PipeWriter(const std::string& path, double timeout_s, std::string what)
    : timeout_s_(timeout_s), what_(std::move(what)) {
  ::signal(SIGPIPE, SIG_IGN);  // a reader gone is EPIPE from write(), reported below
  const auto t0 = Clock::now();
  for (;;) {  // a non-blocking open of a pipe nobody reads fails with ENXIO: retry until a reader comes
    fd_ = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ >= 0) break;
    if (errno != ENXIO && errno != EINTR) throw std::runtime_error(what_ + ": cannot open: " + std::strerror(errno));
    if (since(t0) > timeout_s_)
      throw std::runtime_error(what_ + ": no party opened it to read within " + seconds_text(timeout_s_) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  wait_s_ += since(t0);
  (void)::fcntl(fd_, F_SETPIPE_SZ, 1 << 20);  // fewer wake-ups; the system's cap may refuse it, which is fine
}

PipeWriter::~PipeWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void PipeWriter::write(const uint8_t* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, data, n);
    if (w > 0) {
      data += w;
      n -= size_t(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      if (!wait_for(fd_, POLLOUT, timeout_s_, &wait_s_))
        throw std::runtime_error(what_ + ": the party read nothing for " + seconds_text(timeout_s_) + " s");
      continue;
    }
    if (w < 0 && errno == EPIPE)
      throw std::runtime_error(what_ + ": the party closed its end before the key set was complete (it stopped)");
    throw std::runtime_error(what_ + ": write failed: " + std::strerror(errno));
  }
}

void PipeWriter::close() {
  if (fd_ >= 0 && ::close(fd_) != 0) {
    fd_ = -1;
    throw std::runtime_error(what_ + ": close failed: " + std::strerror(errno));
  }
  fd_ = -1;
}

}  // namespace dr::mpc
