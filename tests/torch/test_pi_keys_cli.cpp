// One-time keys through the CLI: a key block used once is refused again
// whatever the key file is called or where it was copied; `pi deal` checks
// free space, refuses an --out holding files of the user's and removes its
// temporaries when interrupted; `pi serve --bind ''` is refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "test_paths.h"
#include "test_util.h"
#include "util/fs.h"
#include "util/subprocess.h"

namespace fs = std::filesystem;
namespace test = dr::test;

namespace {

const std::string kData = "synthetic:1x12x12:4:64";

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

// One trained run for the suite; the key ledger in a scratch state directory.
class PiKeysCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::ScratchDir>("pi-keys");
    const auto r = cli("train --model resnet6:alpha=0.125 --data " + kData +
                       " --epochs 1 --batch 16 --threads 1 --workers 0 --out " + (*dir_ / "run"));
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::string run() { return *dir_ / "run"; }

  test::ScratchDir d{"pi-keys-case"};
  test::EnvGuard state{"DEEPREDUCE_STATE_DIR", (d / "state").c_str()};

 private:
  static std::unique_ptr<test::ScratchDir> dir_;
};
std::unique_ptr<test::ScratchDir> PiKeysCli::dir_;

// A pi serve process and a pi client against it; both outputs.
struct Session {
  int server_rc = -1;
  test::CommandResult client;
  std::string server_log;
};
Session session(const std::string& run, const std::string& server_key, const std::string& client_key) {
  dr::util::Child server = dr::util::spawn({DEEPREDUCE_BINARY, "pi", "serve", run, "--keys", server_key, "--port", "0",
                                            "--timeout", "20", "--quiet"},
                                           true);
  Session s;
  const std::string line = dr::util::read_line(server.out, 60, "the server's port");
  if (line.rfind("listening on 127.0.0.1:", 0) == 0)
    s.client = cli("pi client --keys " + client_key + " --connect " + line.substr(13) + " --data " + kData +
                   " --count 1 --quiet --timeout 20");
  else
    dr::util::kill_child(server);
  s.server_log = line + "\n" + dr::util::read_all(server.out);
  s.server_rc = dr::util::wait_child(server);
  return s;
}

}  // namespace

TEST_F(PiKeysCli, UsedKeysCopiedRenamedOrCleanedAreRefused) {
  ASSERT_EQ(cli("pi deal " + run() + " --out " + (d / "keys")).rc, 0);
  const Session first = session(run(), d / "keys/server.key", d / "keys/client.key");
  ASSERT_EQ(first.client.rc, 0) << first.client.out;
  ASSERT_EQ(first.server_rc, 0) << first.server_log;
  // Copied elsewhere under other names, the originals' directory cleaned of all but the keys.
  fs::create_directories(d / "copy");
  fs::copy_file(d / "keys/server.key", d / "copy/s.key");
  fs::copy_file(d / "keys/client.key", d / "copy/c.key");
  for (const auto& e : fs::directory_iterator(d / "keys"))
    if (e.path().extension() != ".key") fs::remove(e.path());
  for (const std::string& dir : {d / "copy", d / "keys"}) {
    const bool copy = dir == d / "copy";
    const std::string sk = dir + (copy ? "/s.key" : "/server.key"), ck = dir + (copy ? "/c.key" : "/client.key");
    const Session again = session(run(), sk, ck);
    EXPECT_EQ(again.client.rc, 1) << again.client.out;
    EXPECT_TRUE(test::contains(again.client.out, "handshake refused by the client (" + ck + ")")) << again.client.out;
    EXPECT_TRUE(test::contains(again.client.out, "only 0 of 1 key blocks are unused (blocks 0 to 0 are spent"))
        << again.client.out;
    EXPECT_NE(again.server_rc, 0);
  }
}

TEST_F(PiKeysCli, DealChecksSpaceAndOutAndServeRefusesAnEmptyBind) {
  // 99,999,999,999 inferences: refused at once, nothing created (before, it
  // wrote until stopped: `timeout` stops it here if it ever does again).
  auto r = test::run_command("timeout 60 " + std::string(DEEPREDUCE_BINARY) + " pi deal " + run() + " --out " +
                             (d / "big") + " --count 99999999999");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "the key files need ")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "but the file system of '" + (d / "big") + "' has ")) << r.out;
  EXPECT_FALSE(fs::exists(d / "big"));
  // An --out holding a file of the user's is refused and left alone.
  dr::util::write_file_atomic(d / "mine/notes.txt", "mine");
  r = cli("pi deal " + run() + " --out " + (d / "mine"));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "--out '" + (d / "mine") + "' is not empty and holds no `deepreduce pi deal` output"))
      << r.out;
  EXPECT_FALSE(fs::exists(d / "mine/server.key"));
  r = cli("pi run " + run() + " --data " + kData + " --count 1 --keys " + (d / "mine"));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "--keys is pi deal's --out: --out '" + (d / "mine") + "' is not empty")) << r.out;
  EXPECT_EQ(dr::util::read_file(d / "mine/notes.txt"), "mine");
  // Its own output is dealt again.
  ASSERT_EQ(cli("pi deal " + run() + " --out " + (d / "k")).rc, 0);
  r = cli("pi deal " + run() + " --out " + (d / "k"));
  EXPECT_EQ(r.rc, 0) << r.out;
  // An empty --bind meant every interface; an empty --state-dir would mean the default.
  for (const std::string option : {"--bind", "--state-dir"}) {
    r = cli("pi serve " + run() + " --keys " + (d / "k/server.key") + " " + option + " '' --timeout 2");
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_TRUE(test::contains(r.out, option + ": an empty value is not accepted")) << r.out;
    EXPECT_FALSE(test::contains(r.out, "listening on")) << r.out;
  }
}

// A real SIGINT or SIGTERM in the middle of a deal: the process dies of it,
// and no temporary (nor half a key file) is left behind.
TEST_F(PiKeysCli, InterruptedDealRemovesItsTemporaries) {
  for (const int sig : {SIGINT, SIGTERM}) {
    const std::string out = d / ("sig" + std::to_string(sig)), log = d / ("deal" + std::to_string(sig) + ".log");
    dr::util::Child deal = dr::util::spawn_logged(
        {DEEPREDUCE_BINARY, "pi", "deal", run(), "--out", out, "--count", "300", "--threads", "1"}, log);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool writing = false;
    while (!writing && std::chrono::steady_clock::now() < until) {
      std::error_code ec;
      for (fs::directory_iterator it(out, ec), end; !ec && it != end; it.increment(ec))
        writing |= test::contains(it->path().filename().string(), ".tmp.") && fs::file_size(it->path(), ec) > 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(writing) << "the deal never started writing";
    ::kill(deal.pid, sig);
    const int rc = dr::util::wait_child(deal);
    EXPECT_EQ(rc, 128 + sig) << dr::util::read_file(log);
    EXPECT_TRUE(test::contains(dr::util::read_file(log), "pi deal: deal interrupted after")) << dr::util::read_file(log);
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename());
    EXPECT_TRUE(left.empty()) << "signal " << sig << " left " << left.size() << " files, e.g. " << left.front();
  }
}
