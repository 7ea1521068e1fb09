#include "util/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace dr::util {

namespace {

[[noreturn]] void sys_fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Forks and execs argv with stdin from /dev/null and stdout on `out_fd` (a
// pipe's write end or a log file; -1 inherits), stderr too when `err_too`.
Child start(const std::vector<std::string>& argv, int out_fd, bool err_too) {
  if (argv.empty()) throw std::invalid_argument("spawn: no program");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) sys_fail("cannot start " + argv[0]);
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (out_fd >= 0) ::dup2(out_fd, 1);
    if (out_fd >= 0 && err_too) ::dup2(out_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  Child c;
  c.pid = pid;
  return c;
}

}  // namespace

Child spawn_logged(const std::vector<std::string>& argv, const std::string& log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) sys_fail("cannot open the log " + log);
  Child c;
  try {
    c = start(argv, fd, true);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return c;
}

size_t wait_any(std::vector<Child>& children, int* rc) {
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) sys_fail("waiting for child processes");
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i].pid == pid) {
        children[i].pid = -1;
        if (rc) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return i;
      }
  }
}

Child spawn(const std::vector<std::string>& argv, bool capture_stdout) {
  int fds[2] = {-1, -1};
  if (capture_stdout && ::pipe2(fds, O_CLOEXEC) != 0) sys_fail("cannot create a pipe for " + argv[0]);
  Child c = start(argv, capture_stdout ? fds[1] : -1, false);
  if (capture_stdout) {
    ::close(fds[1]);
    c.out = fds[0];
  }
  return c;
}

std::string read_line(int fd, double timeout_s, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::string line;
  while (true) {
    const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) throw std::runtime_error(what + ": nothing within " + std::to_string(int(timeout_s)) + " s");
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) sys_fail(what);
    if (r == 0) continue;
    char ch;
    const ssize_t n = ::read(fd, &ch, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || ch == '\n') return line;
    line += ch;
  }
}

std::string read_all(int fd) {
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

int wait_child(Child& c) {
  if (c.pid < 0) return 0;
  int status = 0;
  while (::waitpid(c.pid, &status, 0) < 0)
    if (errno != EINTR) sys_fail("waiting for process " + std::to_string(c.pid));
  c.pid = -1;
  if (c.out >= 0) ::close(c.out), c.out = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void kill_child(Child& c) {
  if (c.pid < 0) return;
  ::kill(c.pid, SIGKILL);
  wait_child(c);
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) sys_fail("cannot find the running program (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace dr::util
