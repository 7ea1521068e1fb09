// Issue 16, "Hardening, second round": every file of a run is covered by a
// checksum (result.json by its own, masks.pt from config.json, weights.pt
// also for count and cost), an unfinished run is named as such, and a run
// directory has one writer at a time (two trains on one --out, resume
// during a train: the second is refused naming the directory and the PID).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "arch/datasets.h"
#include "arch/spec.h"
#include "nn/net.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/masks.h"
#include "train/snl.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/run_lock.h"
#include "util/strings.h"

using namespace dr;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

const std::string kModel = "resnet6:alpha=0.125";
const std::string kData = "synthetic:1x8x8:4:64";
const std::string kRun = "--model " + kModel + " --data " + kData + " --threads 1 --workers 0 --batch 16";

// The commands that read a finished run, each with its exit status on success.
std::vector<std::string> readers(const std::string& run) {
  return {"eval " + run, "count " + run, "cost " + run, "resume " + run,
          "pi run " + run + " --data " + kData + " --count 1 --quiet"};
}

void edit_json(const std::string& file, const std::function<void(json&)>& change) {
  json j = json::parse(util::read_file(file));
  change(j);
  util::write_file_atomic(file, j.dump(2));
}

std::string flip_byte(std::string s, size_t at) {
  s[at] = static_cast<char>(s[at] ^ 0x5a);
  return s;
}

// Every reader refuses the run with a message holding `says` (exit 1).
void expect_refused(const std::string& run, const std::string& says, const std::vector<std::string>& cmds) {
  for (const auto& cmd : cmds) {
    const auto r = cli(cmd);
    EXPECT_EQ(r.rc, 1) << cmd << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, says)) << cmd << "\n" << r.out;
    EXPECT_FALSE(test::contains(r.out, "test accuracy 0.99")) << cmd << "\n" << r.out;
  }
}

}  // namespace

TEST(RunFiles, EveryFieldOfResultJsonIsCovered) {
  const test::ScratchDir d("result");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 1 --out " + run).rc, 0);
  const std::string p = run + "/result.json", result = util::read_file(p);
  ASSERT_TRUE(json::parse(result).contains("result_sha256"));
  for (const auto& cmd : readers(run)) EXPECT_EQ(cli(cmd).rc, 0) << cmd;
  // Was accepted everywhere (resume printed the false accuracy).
  edit_json(p, [](json& j) { j["test_acc"] = 0.99; });
  expect_refused(run, p + "' was edited after the run finished", readers(run));
  // Was accepted by resume.
  util::write_file_atomic(p, result);
  edit_json(p, [](json& j) { j["relus"] = 1; });
  expect_refused(run, p + "' was edited after the run finished", {"resume " + run});
  // Any field, nested ones too.
  util::write_file_atomic(p, result);
  edit_json(p, [](json& j) { j["provenance"]["hostname"] = "elsewhere"; });
  expect_refused(run, "was edited after the run finished", {"eval " + run});
  // Laid out differently, the same fields: accepted.
  util::write_file_atomic(p, json::parse(result).dump(4));
  EXPECT_EQ(cli("eval " + run).rc, 0);
  // A run older than the digest (none recorded): its other checks only.
  edit_json(p, [](json& j) { j.erase("result_sha256"); });
  EXPECT_EQ(cli("eval " + run).rc, 0);
  // A test loss that was not finite (a polynomial network's logits overflowing
  // on some image) is written as null and read back as NaN, not refused.
  edit_json(p, [](json& j) { j["test_loss"] = nullptr; });
  for (const auto& cmd : readers(run)) EXPECT_EQ(cli(cmd).rc, 0) << cmd;
}

TEST(RunFiles, CountAndCostCheckWeights) {
  const test::ScratchDir d("weights");
  const std::string run = d / "run", other = d / "other", w = run + "/weights.pt";
  ASSERT_EQ(cli("train " + kRun + " --epochs 1 --out " + run).rc, 0);
  ASSERT_EQ(cli("train " + kRun + " --epochs 1 --seed 2 --out " + other).rc, 0);
  const std::string weights = util::read_file(w);
  const std::vector<std::string> cmds = {"count " + run, "cost " + run};
  for (const auto& cmd : cmds) EXPECT_EQ(cli(cmd).rc, 0) << cmd;
  const std::pair<std::string, std::string> cases[] = {
      {weights.substr(0, weights.size() / 2), "does not match the checksum"},  // truncated
      {flip_byte(weights, weights.size() / 2), "does not match the checksum"},
      {util::read_file(other + "/weights.pt"), "does not match the checksum"},  // another seed's
      {util::read_file(run + "/checkpoint.pt"), "does not match the checksum"},
  };
  for (const auto& [content, says] : cases) {
    util::write_file_atomic(w, content);
    expect_refused(run, w + "' " + says, cmds);
  }
  fs::remove(w);
  expect_refused(run, w + "' does not exist", cmds);
  util::write_file_atomic(w, weights);
  for (const auto& cmd : cmds) EXPECT_EQ(cli(cmd).rc, 0) << cmd;
}

namespace {

// kModel with `live` of its ReLU elements kept, chosen at random, in `path`.
void save_random_masks(const std::string& path, int64_t live) {
  const arch::Network net = arch::build_network(kModel, arch::parse_source(kData).input);
  std::map<std::string, torch::Tensor> scores;
  torch::manual_seed(1);
  for (const arch::Layer* l : net.layers())
    if (l->op == arch::Op::ReLU && l->live) scores[l->name] = torch::rand({l->out.c, l->out.h, l->out.w});
  arch::Network masked = net;
  train::apply_masks(masked, train::keep_largest(net, scores, live));
  train::save_masks(path, masked);
}

// A finished masked run trained here (as linearize's fine-tunes are).
std::string masked_run(const test::ScratchDir& d) {
  save_random_masks(d / "masks.pt", 700);
  train::TrainConfig c;
  c.model = kModel;
  c.data = kData;
  c.out = d / "run";
  c.epochs = 1;
  c.batch = 16;
  c.threads = 1;
  c.workers = 0;
  c.masks_from = d / "masks.pt";
  train::train(c);
  return c.out;
}

}  // namespace

TEST(RunFiles, MasksAreCoveredByTheirChecksum) {
  const test::ScratchDir d("masks");
  const std::string run = masked_run(d), m = run + "/masks.pt";
  const std::string masks = util::read_file(m);
  EXPECT_EQ(json::parse(util::read_file(run + "/config.json")).value("masks_sha256", ""), util::sha256_hex(masks));
  for (const auto& cmd : readers(run)) EXPECT_EQ(cli(cmd).rc, 0) << cmd;
  // One live element moved to another place of its site: the same count, another network.
  train::MaskSet set = train::load_masks(m);
  auto& keep = set.begin()->second.mask.ops;
  const auto on = std::find(keep.begin(), keep.end(), 1), off = std::find(keep.begin(), keep.end(), 0);
  ASSERT_TRUE(on != keep.end() && off != keep.end());
  std::swap(*on, *off);
  arch::Network moved = arch::build_network(kModel, arch::parse_source(kData).input);
  train::apply_masks(moved, set);
  train::save_masks(m, moved);
  ASSERT_NE(util::read_file(m), masks);
  const std::string says = m + "' does not match the SHA-256 recorded in '" + run + "/config.json'";
  expect_refused(run, says, readers(run));  // resume of the finished run never read it
  util::write_file_atomic(m, flip_byte(masks, masks.size() / 2));
  expect_refused(run, says, readers(run));
  util::write_file_atomic(m, masks);
  EXPECT_EQ(cli("eval " + run).rc, 0);
}

namespace {

// The file with its first tensor's storage size (in the pickle, after the
// device "cpu" and a memo put) set to 0: what a flipped byte there does.
std::string zero_first_storage(std::string s) {
  const size_t cpu = s.find("cpuq");
  EXPECT_NE(cpu, std::string::npos);
  const size_t op = cpu + 5;  // BININT1 'K' or BININT2 'M'
  EXPECT_TRUE(s[op] == 'K' || s[op] == 'M') << s[op];
  s[op + 1] = 0;
  if (s[op] == 'M') s[op + 2] = 0;
  return s;
}

std::string load_error(const std::function<void()>& load) { return test::message_of(load); }

}  // namespace

TEST(RunFiles, ADamagedMasksOrWeightsFileIsNamed) {
  // Without a digest to check first (masks a run starts from, a snapshot's
  // weights, an older run): was LibTorch's bare "data is not allocated yet".
  const test::ScratchDir d("damaged");
  save_random_masks(d / "good.pt", 10);
  util::write_file_atomic(d / "bad.pt", zero_first_storage(util::read_file(d / "good.pt")));
  std::string e = load_error([&] { train::load_masks(d / "bad.pt"); });
  EXPECT_TRUE(test::contains(e, "masks file '" + (d / "bad.pt") + "' is not a deepreduce masks.pt")) << e;
  nn::Net net(arch::build_network(kModel, arch::parse_source(kData).input));
  train::save_weights(net, d / "w.pt");
  util::write_file_atomic(d / "w.pt", zero_first_storage(util::read_file(d / "w.pt")));
  e = load_error([&] { train::load_into(net, train::load_weights(d / "w.pt"), true, "weights"); });
  EXPECT_TRUE(test::contains(e, "weights file '" + (d / "w.pt") + "' is not a deepreduce weights.pt")) << e;
}

TEST(RunFiles, AnUnfinishedRunIsNamedNotParsedAsASpec) {
  const test::ScratchDir d("unfinished");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 1 --out " + run).rc, 0);
  fs::remove(run + "/result.json");
  // Was "unknown model family 'DIR'".
  for (const std::string& cmd : {"count " + run, "cost " + run, "eval " + run,
                                 "pi run " + run + " --data " + kData + " --count 1"}) {
    const auto r = cli(cmd);
    EXPECT_EQ(r.rc, 2) << cmd << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, "run '" + run + "' is unfinished (no result.json")) << cmd << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, "deepreduce resume " + run)) << cmd << "\n" << r.out;
  }
}

namespace {

// Waits (at most a minute) until `file` exists.
bool wait_for(const std::string& file) {
  for (int i = 0; i < 600 && !fs::exists(file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return fs::exists(file);
}

const std::string kLong = kRun + " --epochs 60";  // a few seconds: long enough to meet it running

}  // namespace

TEST(RunFiles, TwoTrainsOnOneOutOneIsRefused) {
  const test::ScratchDir d("race");
  const std::string run = d / "run";
  // Was: both exit 0 and the directory holds only the second's files.
  auto a = std::async(std::launch::async, [&] { return cli("train " + kLong + " --out " + run); });
  auto b = std::async(std::launch::async, [&] { return cli("train " + kLong + " --seed 2 --out " + run); });
  const auto ra = a.get(), rb = b.get();
  const auto& won = ra.rc == 0 ? ra : rb;
  const auto& lost = ra.rc == 0 ? rb : ra;
  ASSERT_EQ(won.rc, 0) << ra.out << "\n----\n" << rb.out;
  EXPECT_EQ(lost.rc, 1) << lost.out;
  EXPECT_TRUE(test::contains(lost.out, "run directory '" + run + "' is in use by another deepreduce process (PID "))
      << lost.out;
  // One whole run, its files agreeing, and no lock left behind.
  EXPECT_EQ(json::parse(util::read_file(run + "/config.json"))["seed"], ra.rc == 0 ? 0 : 2);
  EXPECT_EQ(cli("eval " + run).rc, 0);
  EXPECT_FALSE(fs::exists(run + "/" + util::kRunLockName));
}

TEST(RunFiles, ResumeDuringATrainIsRefusedNamingItsPid) {
  const test::ScratchDir d("resume-race");
  const std::string run = d / "run";
  // Long enough to be still training when resume starts; stopped afterwards.
  auto a = std::async(std::launch::async, [&] { return cli("train " + kRun + " --epochs 5000 --out " + run); });
  ASSERT_TRUE(wait_for(run + "/config.json"));
  const std::string pid = util::trim(util::read_file(run + "/" + util::kRunLockName));
  const auto r = cli("resume " + run);  // was exit 0, two writers of one run
  ::kill(static_cast<pid_t>(std::stol(pid)), SIGKILL);
  EXPECT_NE(a.get().rc, 0);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "run directory '" + run + "' is in use by another deepreduce process (PID " + pid +
                                        ", which holds '" + run + "/" + util::kRunLockName + "')"))
      << r.out;
}

TEST(RunFiles, EveryWriterOfARunDirectoryTakesItsLock) {
  const test::ScratchDir d("writers");
  const std::string run = d / "run";
  {
    const util::RunLock held(run);  // this process is the writer now
    const std::string says = "(PID " + std::to_string(::getpid()) + ",";
    auto r = cli("train " + kRun + " --epochs 1 --out " + run);
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_TRUE(test::contains(r.out, says)) << r.out;
    EXPECT_FALSE(fs::exists(run + "/config.json"));
    // The SNL search and a sweep's runs (train::ensure) go through the lock too.
    train::SnlOptions o = train::SnlOptions::defaults();
    o.train.out = run;
    EXPECT_THROW(train::snl_search(o), util::DirectoryBusy);
    train::TrainConfig c;
    c.model = kModel, c.data = kData, c.out = run, c.epochs = 1, c.threads = 1, c.workers = 0;
    EXPECT_THROW(train::ensure(c), util::DirectoryBusy);
    EXPECT_THROW(train::prepare_run(c), util::DirectoryBusy);
  }
  // Let go: the directory the lock made is gone with it.
  EXPECT_FALSE(fs::exists(run));
  // A lock file a killed process left is taken over, and is no file of the
  // user's: train accepts a directory holding only it.
  {
    test::EnvGuard kill("DEEPREDUCE_KILL_AFTER_CHECKPOINT", "1");
    ASSERT_NE(cli("train " + kRun + " --epochs 2 --out " + run).rc, 0);
  }
  ASSERT_TRUE(fs::exists(run + "/" + util::kRunLockName));
  EXPECT_EQ(cli("resume " + run).rc, 0);
  EXPECT_FALSE(fs::exists(run + "/" + util::kRunLockName));
  util::write_file_atomic(d / "fresh/" + util::kRunLockName, "999999999\n");
  const auto r = cli("train " + kRun + " --epochs 1 --out " + (d / "fresh"));
  EXPECT_EQ(r.rc, 0) << r.out;
}
