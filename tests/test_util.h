#pragma once
// Helpers shared by the test binaries: scratch directories, environment
// overrides, and running a command with its output.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace dr::test {

inline bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

// The message of the E that f throws, or "<no exception>" (an exception of
// another type propagates and fails the test).
template <class E = std::exception, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

// A fresh directory under the system temp dir, removed with everything in it.
struct ScratchDir {
  std::string path;
  explicit ScratchDir(const std::string& tag = "test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("dr-" + tag + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Sets (or, with nullptr, unsets) an environment variable for one scope.
struct EnvGuard {
  std::string name;
  bool had = false;
  std::string old;
  EnvGuard(const std::string& n, const char* value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) had = true, old = v;
    if (value)
      ::setenv(n.c_str(), value, 1);
    else
      ::unsetenv(n.c_str());
  }
  ~EnvGuard() {
    if (had)
      ::setenv(name.c_str(), old.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

struct CommandResult {
  int rc = -1;  // exit status; -1 when killed by a signal
  std::string out;  // stdout and stderr together
};

inline CommandResult run_command(const std::string& command) {
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + command);
  CommandResult r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace dr::test
