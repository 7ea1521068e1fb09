#pragma once
// Child processes for launchers (`deepreduce pi run` starts the dealer, the
// server and the client as processes of their own): spawn with stdout on a
// pipe, read with timeouts, wait, kill. Every wait is bounded or the child's
// own timeouts bound it.
#include <sys/types.h>

#include <string>
#include <vector>

namespace dr::util {

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout, or -1 when not captured
};

// Runs argv (argv[0] a path) with stdin from /dev/null, stderr inherited and
// stdout on a pipe when `capture_stdout`. Throws std::runtime_error.
Child spawn(const std::vector<std::string>& argv, bool capture_stdout);
// The same with stdout and stderr appended to `log` (created if missing).
Child spawn_logged(const std::vector<std::string>& argv, const std::string& log);

// Waits for whichever of `children` ends first: its index; its exit code
// (128 + signal when killed) goes to *rc. The child is reaped (pid -1).
size_t wait_any(std::vector<Child>& children, int* rc);

// One line of fd (without the newline) within timeout_s; "" at end of file.
// Throws std::runtime_error on timeout, naming `what`.
std::string read_line(int fd, double timeout_s, const std::string& what);
// Everything until end of file.
std::string read_all(int fd);

// Waits for the child: its exit code, or 128 + signal when killed.
int wait_child(Child& c);
// SIGKILL and reap; harmless for a child already reaped.
void kill_child(Child& c);

// The running program's path (/proc/self/exe).
std::string self_executable();

}  // namespace dr::util
