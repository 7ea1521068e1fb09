// Data-parallel training end to end: two `deepreduce train` processes on
// 127.0.0.1 must reach the weights one process reaches with the same global
// batch, and a rank that dies must make the other fail fast with a clear
// error instead of hanging.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "test_paths.h"
#include "train/masks.h"
#include "train/weights.h"

extern char** environ;

using namespace dr;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// A TCP port that was free a moment ago.
int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free TCP port");
  ::close(s);
  return ntohs(a.sin_port);
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// One `deepreduce` process with extra environment variables; stdout and
// stderr go to files. Killed if still running when destroyed.
class Proc {
 public:
  Proc(const std::vector<std::string>& args, const std::map<std::string, std::string>& extra_env, fs::path log)
      : log_(std::move(log)) {
    static const char* kCleared[] = {"RANK",          "WORLD_SIZE",         "LOCAL_RANK",
                                     "MASTER_ADDR",   "MASTER_PORT",        "DEEPREDUCE_DIST_TIMEOUT",
                                     "DEEPREDUCE_SYNC_BN", "DEEPREDUCE_EXEC"};
    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e, key = kv.substr(0, kv.find('='));
      if (std::find(std::begin(kCleared), std::end(kCleared), key) == std::end(kCleared)) envs.push_back(kv);
    }
    for (const auto& [k, v] : extra_env) envs.push_back(k + "=" + v);
    std::vector<std::string> argv_s = {DEEPREDUCE_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string out = log_.string() + ".out", err = log_.string() + ".err";
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, DEEPREDUCE_BINARY, &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("posix_spawn " DEEPREDUCE_BINARY " failed");
  }
  ~Proc() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The exit status (WIFEXITED-style raw status), or nullopt after `limit`.
  std::optional<int> wait_for(std::chrono::duration<double> limit) {
    const auto end = Clock::now() + limit;
    while (!status_) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = st;
        break;
      }
      if (Clock::now() > end) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return status_;
  }
  void kill_now() { ::kill(pid_, SIGKILL); }
  std::string err() const { return slurp(log_.string() + ".err"); }
  std::string out() const { return slurp(log_.string() + ".out"); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

std::string describe(const std::optional<int>& st) {
  if (!st) return "still running";
  if (WIFEXITED(*st)) return "exit " + std::to_string(WEXITSTATUS(*st));
  if (WIFSIGNALED(*st)) return "signal " + std::to_string(WTERMSIG(*st));
  return "status " + std::to_string(*st);
}

bool exited_ok(const std::optional<int>& st) { return st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0; }

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("deepreduce_test_distributed_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // `deepreduce train` arguments for a small network; 251 images in batches
  // of 64: the last global batch (59) is cut unevenly (29 + 30).
  std::vector<std::string> train_args(const std::string& out, int epochs = 2) const {
    return {"train", "--model", "resnet6:alpha=0.25", "--data", "synthetic:3x16x16:4:251", "--out",
            (dir_ / out).string(), "--epochs", std::to_string(epochs), "--batch", "64", "--lr", "0.05",
            "--seed", "7", "--threads", "1", "--workers", "0"};
  }

  std::map<std::string, std::string> rank_env(int rank, int port, int timeout_s = 20) const {
    return {{"RANK", std::to_string(rank)},          {"WORLD_SIZE", "2"},
            {"LOCAL_RANK", std::to_string(rank)},    {"MASTER_ADDR", "127.0.0.1"},
            {"MASTER_PORT", std::to_string(port)},   {"DEEPREDUCE_DIST_TIMEOUT", std::to_string(timeout_s)}};
  }

  // Trains `out` with two ranks (`extra`: more environment for both).
  void train_two_ranks(const std::string& out, const std::map<std::string, std::string>& extra = {},
                       int epochs = 2) {
    const int port = free_port();
    auto e0 = rank_env(0, port), e1 = rank_env(1, port);
    e0.insert(extra.begin(), extra.end());
    e1.insert(extra.begin(), extra.end());
    Proc r0(train_args(out, epochs), e0, dir_ / (out + ".rank0"));
    Proc r1(train_args(out, epochs), e1, dir_ / (out + ".rank1"));
    const auto s0 = r0.wait_for(std::chrono::seconds(40)), s1 = r1.wait_for(std::chrono::seconds(10));
    ASSERT_TRUE(exited_ok(s0)) << "rank 0: " << describe(s0) << "\n" << r0.err();
    ASSERT_TRUE(exited_ok(s1)) << "rank 1: " << describe(s1) << "\n" << r1.err();
  }

  void train_one_process(const std::string& out, const std::map<std::string, std::string>& env = {},
                         int epochs = 2) {
    Proc p(train_args(out, epochs), env, dir_ / out);
    const auto s = p.wait_for(std::chrono::seconds(40));
    ASSERT_TRUE(exited_ok(s)) << describe(s) << "\n" << p.err();
  }

  // Largest |a - b| / (1e-3 + |b|) over every tensor; the worst name in *where.
  double max_rel_diff(const train::StateDict& a, const train::StateDict& b, std::string* where) const {
    EXPECT_EQ(a.size(), b.size());
    double worst = 0;
    for (const auto& [name, tb] : b) {
      auto it = a.find(name);
      if (it == a.end()) {
        ADD_FAILURE() << "missing " << name;
        continue;
      }
      const auto x = it->second.to(torch::kFloat64), y = tb.to(torch::kFloat64);
      const double d = ((x - y).abs() / (y.abs() + 1e-3)).max().item<double>();
      if (d > worst) worst = d, *where = name;
    }
    return worst;
  }

  fs::path dir_;
};

// Plain NCHW kernels (DEEPREDUCE_EXEC=nocl): LibTorch's contiguous BatchNorm
// accumulates its sums accurately, so one process and two ranks differ only by
// the order of a few float sums, and two epochs end within ~1e-5.
const std::map<std::string, std::string> kExact = {{"DEEPREDUCE_EXEC", "nocl"}};

TEST_F(DataParallel, TwoRanksTrainToTheWeightsOfOneProcess) {
  train_one_process("single", kExact);
  train_two_ranks("dp", kExact);
  // Rank 0 alone writes the run directory.
  const auto one = train::load_weights((dir_ / "single" / "weights.pt").string());
  const auto two = train::load_weights((dir_ / "dp" / "weights.pt").string());
  std::string where;
  const double d = max_rel_diff(two, one, &where);
  EXPECT_LT(d, 1e-3) << "worst: " << where;
  // BatchNorm running statistics come from the global batch too.
  EXPECT_TRUE(torch::equal(two.at("stem.bn.num_batches_tracked"), one.at("stem.bn.num_batches_tracked")));
  EXPECT_TRUE(torch::allclose(two.at("stem.bn.running_var"), one.at("stem.bn.running_var"), 1e-4, 1e-6));
  // The epoch statistics are summed over the ranks: same train loss.
  auto last_line = [](const fs::path& p) {
    std::ifstream f(p);
    std::string line, last;
    while (std::getline(f, line))
      if (!line.empty()) last = line;
    return nlohmann::json::parse(last);
  };
  const auto m1 = last_line(dir_ / "single" / "metrics.jsonl"), m2 = last_line(dir_ / "dp" / "metrics.jsonl");
  EXPECT_NEAR(m2["train_loss"].get<double>(), m1["train_loss"].get<double>(), 1e-4);
  EXPECT_DOUBLE_EQ(m2["train_acc"].get<double>(), m1["train_acc"].get<double>());
}

// The default (channels-last) kernels: LibTorch 1.13's channels-last
// BatchNorm sums in float in an order that depends on the batch size (~1e-5
// relative per step), and training amplifies such noise. Still far below
// the difference per-rank statistics make (next test: > 0.1).
TEST_F(DataParallel, DefaultKernelsAgreeWithinFloatNoise) {
  train_one_process("single", {}, 1);
  train_two_ranks("dp", {}, 1);
  const auto one = train::load_weights((dir_ / "single" / "weights.pt").string());
  const auto two = train::load_weights((dir_ / "dp" / "weights.pt").string());
  double worst = 0;
  for (const auto& [name, t] : one)
    worst = std::max(worst, (two.at(name).to(torch::kFloat64) - t.to(torch::kFloat64)).abs().max().item<double>());
  EXPECT_LT(worst, 1e-2);
}

// Without synchronised BatchNorm each rank normalises with its own half of the
// batch: a different (also valid) training run. This shows that the tests
// above would notice if the statistics were not synchronised.
TEST_F(DataParallel, PerRankBatchNormIsADifferentRun) {
  train_one_process("single", kExact);
  auto env = kExact;
  env["DEEPREDUCE_SYNC_BN"] = "0";
  train_two_ranks("dp", env);
  const auto one = train::load_weights((dir_ / "single" / "weights.pt").string());
  const auto two = train::load_weights((dir_ / "dp" / "weights.pt").string());
  std::string where;
  EXPECT_GT(max_rel_diff(two, one, &where), 1e-2);
}

// SNL's mask search on the training engine, data-parallel: the engine
// averages the masks' gradients with the weights', so two ranks search as one
// process with the same global batch does: the same live counts epoch by
// epoch (to a few masks at the threshold), the same snapshots, weights within
// float noise; then each fine-tune
// trains over both ranks too, and rank 0 alone writes and reports.
TEST_F(DataParallel, TwoRanksSearchMasksAsOneProcess) {
  train_one_process("teacher", kExact, 1);
  auto linearize = [&](const std::string& out) -> std::vector<std::string> {
    return {"linearize", "--teacher", (dir_ / "teacher").string(), "--data", "synthetic:3x16x16:4:251", "--budget",
            "6K,4200", "--search-lr", "0.01", "--lasso", "1e-4", "--threshold", "0.95", "--search-epochs", "6",
            "--epochs", "1", "--batch", "64", "--seed", "7", "--threads", "1", "--workers", "0",
            "--out", (dir_ / out).string()};
  };
  {
    Proc p(linearize("single"), kExact, dir_ / "single");
    const auto s = p.wait_for(std::chrono::seconds(60));
    ASSERT_TRUE(exited_ok(s)) << describe(s) << "\n" << p.err();
  }
  const int port = free_port();
  auto e0 = rank_env(0, port), e1 = rank_env(1, port);
  e0.insert(kExact.begin(), kExact.end());
  e1.insert(kExact.begin(), kExact.end());
  Proc r0(linearize("dp"), e0, dir_ / "dp.rank0");
  Proc r1(linearize("dp"), e1, dir_ / "dp.rank1");
  const auto s0 = r0.wait_for(std::chrono::seconds(60)), s1 = r1.wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(exited_ok(s0)) << "rank 0: " << describe(s0) << "\n" << r0.err();
  ASSERT_TRUE(exited_ok(s1)) << "rank 1: " << describe(s1) << "\n" << r1.err();
  EXPECT_NE(r0.err().find("data-parallel over 2 ranks"), std::string::npos) << r0.err();
  EXPECT_EQ(r1.err().find("search epoch"), std::string::npos) << r1.err();  // rank 0 prints
  EXPECT_NE(r0.out().find("report:"), std::string::npos) << r0.out();
  EXPECT_EQ(r1.out(), "");

  auto lines = [](const fs::path& p) {
    std::vector<nlohmann::json> out;
    std::ifstream f(p);
    for (std::string line; std::getline(f, line);)
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  };
  const auto one = lines(dir_ / "single" / "search" / "metrics.jsonl"), two = lines(dir_ / "dp" / "search" / "metrics.jsonl");
  ASSERT_EQ(one.size(), two.size());
  ASSERT_FALSE(one.empty());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_NEAR(two[i]["live"].get<double>(), one[i]["live"].get<double>(), 10) << "search epoch " << i + 1;
    EXPECT_NEAR(two[i]["train_loss"].get<double>(), one[i]["train_loss"].get<double>(), 1e-4) << "epoch " << i + 1;
  }
  EXPECT_GE(one.size(), 3u);  // 11,776 live ReLUs falling to 4,200 over several epochs
  const auto r1j = nlohmann::json::parse(slurp(dir_ / "single" / "search" / "result.json"));
  const auto r2j = nlohmann::json::parse(slurp(dir_ / "dp" / "search" / "result.json"));
  ASSERT_EQ(r1j["snapshots"].size(), 2u);
  ASSERT_EQ(r2j["snapshots"].size(), 2u);
  for (int i : {0, 1}) EXPECT_EQ(r2j["snapshots"][i]["epoch"], r1j["snapshots"][i]["epoch"]);
  // Adam steps near-zero gradients by about lr whatever their size, so float
  // noise moves single weights by a step or two: each tensor is compared as
  // a whole, |a - b| / |b|.
  const fs::path snap = fs::path("search") / "snapshots" / "6000";
  const auto w1 = train::load_weights((dir_ / "single" / snap / "weights.pt").string());
  const auto w2 = train::load_weights((dir_ / "dp" / snap / "weights.pt").string());
  double worst = 0;
  std::string where;
  for (const auto& [name, b] : w1) {
    if (!b.is_floating_point()) continue;
    const auto a = w2.at(name).to(torch::kFloat64), y = b.to(torch::kFloat64);
    const double d = (a - y).norm().item<double>() / (y.norm().item<double>() + 1e-12);
    if (d > worst) worst = d, where = name;
  }
  EXPECT_LT(worst, 3e-2) << "worst: " << where;  // 0.008 measured (stem.bn.bias)
  // The snapshot keeps the budget's largest masks: the same elements up to ties in float noise.
  const auto m1 = train::load_masks((dir_ / "single" / snap / "masks.pt").string());
  const auto m2 = train::load_masks((dir_ / "dp" / snap / "masks.pt").string());
  ASSERT_EQ(m1.size(), m2.size());
  int64_t same = 0, all = 0;
  for (const auto& [site, a] : m1) {
    const auto& b = m2.at(site);
    ASSERT_EQ(a.mask.ops.size(), b.mask.ops.size()) << site;
    for (size_t i = 0; i < a.mask.ops.size(); ++i) same += a.mask.ops[i] == b.mask.ops[i], ++all;
  }
  EXPECT_GE(static_cast<double>(same), 0.99 * static_cast<double>(all));
  EXPECT_TRUE(fs::exists(dir_ / "dp" / "budget-4200" / "result.json"));
  EXPECT_TRUE(fs::exists(dir_ / "dp" / "report.md"));
}

TEST_F(DataParallel, KilledRankMakesTheOtherFailFast) {
  const int port = free_port();
  Proc r0(train_args("run", 100000), rank_env(0, port, 10), dir_ / "rank0");
  Proc r1(train_args("run", 100000), rank_env(1, port, 10), dir_ / "rank1");
  // Wait until both are training (rank 0 has finished an epoch), then kill rank 1.
  const auto until = Clock::now() + std::chrono::seconds(30);
  while (r0.err().find("epoch 1/100000 train") == std::string::npos) {
    ASSERT_LT(Clock::now(), until) << "rank 0 did not finish an epoch:\n" << r0.err() << "\nrank 1:\n" << r1.err();
    ASSERT_FALSE(r0.wait_for(std::chrono::seconds(0))) << "rank 0 ended early:\n" << r0.err();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r1.kill_now();
  const auto t0 = Clock::now();
  const auto s0 = r0.wait_for(std::chrono::seconds(25));  // well within: timeout 10 s
  ASSERT_TRUE(s0) << "rank 0 still running 25 s after rank 1 was killed:\n" << r0.err();
  EXPECT_TRUE(WIFEXITED(*s0) && WEXITSTATUS(*s0) != 0) << describe(s0);
  const std::string err = r0.err();
  EXPECT_NE(err.find("data-parallel training: rank 0 lost contact with the others"), std::string::npos) << err;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 15.0);
}

TEST_F(DataParallel, DivergenceStopsEveryRankWithItsCause) {
  // A learning rate that blows the loss up within a few steps: every rank
  // stops with the divergence message, none with a lost contact.
  const int port = free_port();
  auto args = train_args("run", 3);
  *(std::find(args.begin(), args.end(), "--lr") + 1) = "100";
  Proc r0(args, rank_env(0, port), dir_ / "rank0");
  Proc r1(args, rank_env(1, port), dir_ / "rank1");
  const auto s0 = r0.wait_for(std::chrono::seconds(40)), s1 = r1.wait_for(std::chrono::seconds(10));
  for (const auto* r : {&r0, &r1}) {
    const auto& st = r == &r0 ? s0 : s1;
    ASSERT_TRUE(st) << r->err();
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 1) << describe(st) << "\n" << r->err();
    EXPECT_NE(r->err().find("diverged"), std::string::npos) << r->err();
    EXPECT_EQ(r->err().find("lost contact"), std::string::npos) << r->err();
  }
  EXPECT_NE(r1.err().find("deepreduce: error: rank 1: training of"), std::string::npos) << r1.err();
}

TEST_F(DataParallel, OnlyRankZeroPrintsTheResult) {
  const int port = free_port();
  Proc r0(train_args("run", 1), rank_env(0, port), dir_ / "rank0");
  Proc r1(train_args("run", 1), rank_env(1, port), dir_ / "rank1");
  const auto s0 = r0.wait_for(std::chrono::seconds(40)), s1 = r1.wait_for(std::chrono::seconds(10));
  ASSERT_TRUE(exited_ok(s0)) << r0.err();
  ASSERT_TRUE(exited_ok(s1)) << r1.err();
  EXPECT_NE(r0.out().find("test accuracy"), std::string::npos) << r0.out();
  EXPECT_EQ(r1.out(), "");
}

TEST_F(DataParallel, MissingRankFailsAfterTheTimeout) {
  // Rank 1 alone: nobody serves the rendezvous.
  Proc r1(train_args("run", 1), rank_env(1, free_port(), 2), dir_ / "rank1");
  const auto s = r1.wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(s) << "rank 1 still waiting 20 s after its 2 s timeout";
  EXPECT_TRUE(WIFEXITED(*s) && WEXITSTATUS(*s) != 0) << describe(s);
  EXPECT_NE(r1.err().find("rank 1 could not reach the rendezvous at 127.0.0.1:"), std::string::npos) << r1.err();
}

TEST_F(DataParallel, BadEnvironmentNamesTheVariable) {
  auto env = rank_env(0, free_port());
  env.erase("RANK");
  Proc p(train_args("run", 1), env, dir_ / "norank");
  const auto s = p.wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(s);
  EXPECT_TRUE(WIFEXITED(*s) && WEXITSTATUS(*s) == 2) << describe(s);  // a usage error
  EXPECT_NE(p.err().find("RANK is not set"), std::string::npos) << p.err();

  env = rank_env(0, free_port());
  env["MASTER_PORT"] = "http";
  Proc q(train_args("run", 1), env, dir_ / "badport");
  ASSERT_TRUE(q.wait_for(std::chrono::seconds(20)));
  EXPECT_NE(q.err().find("MASTER_PORT='http'"), std::string::npos) << q.err();

  // One process with a rank it cannot have: was silently trained as rank 0.
  env = rank_env(0, free_port());
  env["WORLD_SIZE"] = "1";
  env["RANK"] = "7";
  Proc o(train_args("run", 1), env, dir_ / "rank7");
  const auto so = o.wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(so);
  EXPECT_TRUE(WIFEXITED(*so) && WEXITSTATUS(*so) == 2) << describe(so);
  EXPECT_NE(o.err().find("RANK='7' is not a rank below WORLD_SIZE=1"), std::string::npos) << o.err();
  EXPECT_FALSE(fs::exists(dir_ / "run" / "config.json"));
}

TEST_F(DataParallel, RanksWithDifferentSettingsStopNamingTheFirstDifference) {
  // Different --epochs on the two ranks: both stop cleanly (exit 2, no
  // abort), saying which setting differs.
  const int port = free_port();
  Proc r0(train_args("run", 1), rank_env(0, port), dir_ / "rank0");
  Proc r1(train_args("run", 2), rank_env(1, port), dir_ / "rank1");
  const auto s0 = r0.wait_for(std::chrono::seconds(40)), s1 = r1.wait_for(std::chrono::seconds(10));
  for (const auto* r : {&r0, &r1}) {
    const auto& st = r == &r0 ? s0 : s1;
    ASSERT_TRUE(st) << r->err();
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 2) << describe(st) << "\n" << r->err();
    EXPECT_NE(r->err().find("different settings (epochs: 1 in rank 0, 2 in rank 1)"), std::string::npos) << r->err();
  }
}

TEST_F(DataParallel, LoneRankZeroWaitsOneTimeout) {
  // Nobody joins rank 0: it stops after its timeout (2 s), not after two.
  const auto t0 = std::chrono::steady_clock::now();
  Proc r0(train_args("run", 1), rank_env(0, free_port(), 2), dir_ / "rank0");
  const auto s = r0.wait_for(std::chrono::seconds(20));
  ASSERT_TRUE(s);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(WIFEXITED(*s) && WEXITSTATUS(*s) == 1) << describe(s);
  EXPECT_NE(r0.err().find("not every one of the 2 ranks"), std::string::npos) << r0.err();
  EXPECT_LT(took, 3.9) << r0.err();  // 2 s timeout plus start-up, well below 2 x 2 s
}

}  // namespace
