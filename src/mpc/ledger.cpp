#include "mpc/ledger.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "util/fs.h"

namespace dr::mpc {

namespace {

constexpr double kLockTimeoutS = 30;  // a claim holds the lock for one small write

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string home_dir() {
  std::string home = env("HOME");
  if (!home.empty()) return home;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return pw->pw_dir;
  return "";
}

// A rename is durable only once its directory is synced.
void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("key ledger: cannot sync directory '" + dir + "': " + std::strerror(e));
  }
  ::close(fd);
}

// The ledger's lock, held for one claim. Waits at most kLockTimeoutS.
class Lock {
 public:
  explicit Lock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("key ledger: cannot open lock '" + path + "': " + std::strerror(errno));
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(kLockTimeoutS);
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if ((errno != EWOULDBLOCK && errno != EINTR) || std::chrono::steady_clock::now() > end) {
        const int e = errno;
        ::close(fd_);
        throw std::runtime_error("key ledger: cannot lock '" + path + "' (" +
                                 (e == EWOULDBLOCK ? "another process has held it for 30 s" : std::strerror(e)) + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~Lock() { ::close(fd_); }  // closing releases the flock
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

std::string default_state_dir() {
  if (const std::string d = env("DEEPREDUCE_STATE_DIR"); !d.empty()) return d;
  if (const std::string x = env("XDG_STATE_HOME"); !x.empty() && x.front() == '/')  // XDG: relative ones are ignored
    return util::path_join(x, "deepreduce");
  const std::string home = home_dir();
  if (home.empty())
    throw std::runtime_error("no state directory for the key ledger: set DEEPREDUCE_STATE_DIR (or HOME)");
  return util::path_join(home, ".local/state/deepreduce");
}

KeyLedger::KeyLedger(const KeyFile& keys, const std::string& state_dir)
    : keys_(keys), dir_(util::path_join(state_dir.empty() ? default_state_dir() : state_dir, "pi-keys")) {
  path_ = util::path_join(dir_, hex(keys.header().nonce) + "." + party_name(keys.header().party) + ".json");
}

KeyLedger::Entry KeyLedger::read() const {
  if (!util::file_exists(path_)) return {};
  try {
    const auto j = nlohmann::json::parse(util::read_file(path_));
    if (j.at("nonce").get<std::string>() != hex(keys_.header().nonce) ||
        j.at("party").get<std::string>() != party_name(keys_.header().party))
      throw std::runtime_error("it records another key set");
    return {j.at("next").get<uint64_t>(), j.value("key_file", std::string())};
  } catch (const std::exception& e) {
    throw std::runtime_error("key ledger '" + path_ + "' is unreadable (" + e.what() +
                             "); refusing to guess which blocks of key file '" + keys_.path() +
                             "' were used: deal new keys");
  }
}

uint64_t KeyLedger::next_unused() const { return read().next; }

std::vector<uint8_t> KeyLedger::take(uint64_t index) {
  const uint64_t count = keys_.header().count;
  const std::string key = "key file '" + keys_.path() + "': ";
  util::make_dirs(dir_);
  {
    const Lock lock(util::path_join(dir_, "lock"));
    util::remove_stale_temporaries(dir_);
    const Entry e = read();
    if (index < e.next)
      throw std::runtime_error(key + "inference block " + std::to_string(index) + " was already used on this machine" +
                               (e.key_file.empty() ? "" : " (taken from '" + e.key_file + "')") +
                               "; a key block must never be used twice, whatever the file is called or where it "
                               "was copied (ledger '" + path_ + "': next unused block " + std::to_string(e.next) +
                               " of " + std::to_string(count) + "): deal new keys");
    if (index >= count)
      throw std::runtime_error(key + "all " + std::to_string(count) + " inferences are used up (asked for block " +
                               std::to_string(index) + "): deal new keys");
    std::error_code ec;
    const auto abs = std::filesystem::absolute(keys_.path(), ec);
    const nlohmann::json j = {{"nonce", hex(keys_.header().nonce)},
                              {"party", party_name(keys_.header().party)},
                              {"next", index + 1},
                              {"count", count},
                              {"key_file", ec ? keys_.path() : abs.lexically_normal().string()}};
    // Written and synced before the block is read: a crash wastes it, never reuses it.
    util::write_file_atomic(path_, j.dump() + "\n");
    sync_dir(dir_);
    sync_dir(std::filesystem::path(dir_).parent_path().string());  // pi-keys itself may be new
  }
  return keys_.read_block(index);
}

}  // namespace dr::mpc
