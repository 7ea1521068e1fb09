// Training end to end through the CLI: run directories, KD, resume after a
// kill, bad inputs, and weights that Python PyTorch loads.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "arch/spec.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/config.h"
#include "train/kd.h"
#include "train/weights.h"
#include "util/fs.h"

using namespace dr;
namespace fs = std::filesystem;

namespace {

// Runs the deepreduce CLI, stdout and stderr together.
test::CommandResult cli(const std::string& args) {
  return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args);
}

const std::string kData = "--data synthetic:3x16x16:4:256 --threads 1 --workers 0 --batch 32";
const std::string kModel = "--model resnet10:alpha=0.25";

std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(KdLoss, MatchesHandComputation) {
  const auto s = torch::tensor({{1.0, 2.0, 0.0}, {0.5, -1.0, 2.0}});
  const auto t = torch::tensor({{0.0, 1.0, 3.0}, {1.0, 1.0, 1.0}});
  const auto y = torch::tensor({1, 2}, torch::kLong);
  const double T = 2.0, lambda = 0.5;
  double ce = 0, kl = 0;
  const double sv[2][3] = {{1, 2, 0}, {0.5, -1, 2}}, tv[2][3] = {{0, 1, 3}, {1, 1, 1}};
  const int yv[2] = {1, 2};
  for (int i = 0; i < 2; ++i) {
    double zs = 0, zsT = 0, ztT = 0;
    for (int k = 0; k < 3; ++k) zs += std::exp(sv[i][k]), zsT += std::exp(sv[i][k] / T), ztT += std::exp(tv[i][k] / T);
    ce += -(sv[i][yv[i]] - std::log(zs));
    for (int k = 0; k < 3; ++k) {
      const double pt = std::exp(tv[i][k] / T) / ztT, ps = std::exp(sv[i][k] / T) / zsT;
      kl += pt * std::log(pt / ps);
    }
  }
  ce /= 2, kl /= 2;
  const auto l = train::kd_loss(s, t, y, T, lambda);
  EXPECT_NEAR(l.ce.item<double>(), ce, 1e-6);
  EXPECT_NEAR(l.kl.item<double>(), kl, 1e-6);
  EXPECT_NEAR(l.total.item<double>(), ce + lambda * T * T * kl, 1e-6);
  // Identical logits: no distillation term.
  EXPECT_NEAR(train::kd_loss(s, s, y, 4.0, 1.0).kl.item<double>(), 0.0, 1e-7);
}

TEST(Schedule, StepAndCosineFollowProgress) {
  train::TrainConfig c;
  c.epochs = 200;
  EXPECT_DOUBLE_EQ(train::lr_at(c, 99.9), 0.1);
  EXPECT_NEAR(train::lr_at(c, 100), 0.01, 1e-12);
  EXPECT_NEAR(train::lr_at(c, 150), 0.001, 1e-12);
  c.epochs = 1;  // a one-epoch run decays within the epoch
  EXPECT_NEAR(train::lr_at(c, 0.6), 0.01, 1e-12);
  c.schedule = "cosine";
  EXPECT_NEAR(train::lr_at(c, 0.5), 0.05, 1e-12);
  c.schedule = "linear";
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(Schedule, WarmupRampsLinearlyIntoTheSchedule) {
  train::TrainConfig c;
  c.epochs = 200;
  c.warmup = 5;
  EXPECT_DOUBLE_EQ(train::lr_at(c, 0), 0.0);
  EXPECT_NEAR(train::lr_at(c, 2.5), 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(train::lr_at(c, 5), 0.1);
  EXPECT_NEAR(train::lr_at(c, 100), 0.01, 1e-12);  // the schedule itself is unchanged
  c.epochs = 1;
  c.warmup = 0.1;
  c.schedule = "cosine";
  EXPECT_NEAR(train::lr_at(c, 0.05), 0.5 * 0.5 * 0.1 * (1 + std::cos(M_PI * 0.05)), 1e-12);
  c.warmup = 1;  // the whole run
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c.warmup = -0.5;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(TrainConfig, RoundTripsAndReadsOlderConfigs) {
  train::TrainConfig c;
  c.model = "resnet18";
  c.data = "fashion-mnist";
  c.warmup = 0.25;
  c.pad = 2;
  c.flip = false;
  c.weight_init = "kaiming";
  c.zero_init_residual = !c.zero_init_residual;
  EXPECT_EQ(c.pad_for(28), 2);
  c.pad = -1;  // by image size
  EXPECT_EQ(c.pad_for(28), 2);
  EXPECT_EQ(c.pad_for(32), 4);
  EXPECT_EQ(c.pad_for(64), 4);
  c.pad = 2;
  const auto back = train::TrainConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  // A config.json written before these settings existed reruns as it ran.
  auto old = c.to_json();
  for (const char* k : {"warmup", "pad", "flip", "weight_init", "zero_init_residual"}) old.erase(k);
  const auto legacy = train::TrainConfig::from_json(old);
  EXPECT_EQ(legacy.warmup, 0.0);
  EXPECT_EQ(legacy.pad, 4);
  EXPECT_TRUE(legacy.flip);
  EXPECT_EQ(legacy.weight_init, "torch");
  EXPECT_FALSE(legacy.zero_init_residual);
  c.weight_init = "xavier";
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c.weight_init = "torch";
  c.pad = -2;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(TrainCli, RunDirectoryKdAndEval) {
  const test::ScratchDir scratch("kd");
  const std::string& d = scratch.path;
  auto r = cli("train " + kModel + " " + kData + " --epochs 3 --lr 0.05 --out " + d + "/teacher");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const char* f : {"config.json", "metrics.jsonl", "checkpoint.pt", "weights.pt", "result.json"})
    EXPECT_TRUE(fs::exists(d + "/teacher/" + f)) << f;
  const auto m = metrics(d + "/teacher");
  ASSERT_EQ(m.size(), 3u);
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i]["epoch"], i + 1);
    for (const char* k : {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "seconds"})
      EXPECT_TRUE(m[i].contains(k)) << k;
  }
  const double acc = m.back()["test_acc"];
  EXPECT_GT(acc, 0.5) << "the synthetic set is learnable; 4 classes";
  const auto cfg = nlohmann::json::parse(util::read_file(d + "/teacher/config.json"));
  EXPECT_EQ(cfg["model"], "resnet10:alpha=0.25");
  EXPECT_EQ(cfg["epochs"], 3);

  // A culled and thinned student distilled from it, started from its weights.
  r = cli("train --model resnet10:alpha=0.25:cull=S1:thin " + kData + " --epochs 2 --teacher " + d +
          "/teacher --init teacher --out " + d + "/student");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("KD from"), std::string::npos) << r.out;
  const auto res = nlohmann::json::parse(util::read_file(d + "/student/result.json"));
  EXPECT_TRUE(res["kd"].get<bool>());
  EXPECT_EQ(res["relus"].get<int64_t>(),
            arch::build_network("resnet10:alpha=0.25:cull=S1:thin", {{3, 16, 16}, 4}).totals().relus);

  r = cli("eval " + d + "/student");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ReLUs"), std::string::npos) << r.out;
}

// --clip-grad bounds the step: clipped to a norm of 1e-9 (no weight decay)
// the network the run above teaches in 3 epochs does not move, where 1000 is
// as if unclipped; config.json records it.
TEST(TrainCli, ClipGradBoundsEachStep) {
  const test::ScratchDir scratch("clip");
  const std::string& d = scratch.path;
  for (const char* clip : {"1e-9", "1000"}) {
    const auto r = cli("train " + kModel + " " + kData + " --epochs 3 --lr 0.05 --wd 0 --clip-grad " + clip +
                       " --out " + d + "/" + clip);
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  const auto still = metrics(d + "/1e-9"), free = metrics(d + "/1000");
  for (const auto& e : still) EXPECT_NEAR(e["train_loss"].get<double>(), still[0]["train_loss"].get<double>(), 0.05);
  EXPECT_LT(free.back()["train_loss"].get<double>(), still.back()["train_loss"].get<double>() - 0.2);
  EXPECT_GT(free.back()["test_acc"].get<double>(), 0.5);
  const auto cfg = nlohmann::json::parse(util::read_file(d + "/1e-9/config.json"));
  EXPECT_DOUBLE_EQ(cfg["clip_grad"].get<double>(), 1e-9);
  EXPECT_NE(cli("train " + kModel + " " + kData + " --epochs 1 --clip-grad -1 --out " + d + "/bad").rc, 0);
}

TEST(TrainCli, ResumeAfterKillLosesNoEpoch) {
  const test::ScratchDir scratch("resume");
  const std::string& d = scratch.path;
  const std::string args = "train " + kModel + " --data synthetic:3x16x16:4:1024 --threads 1 --workers 0 --batch 32 "
                           "--epochs 5 --seed 3";
  // Uninterrupted reference.
  ASSERT_EQ(cli(args + " --out " + d + "/ref").rc, 0);
  // The same run, killed after its first finished epoch, then resumed.
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = std::string(DEEPREDUCE_BINARY) + " " + args + " --out " + d + "/killed > /dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
    _exit(127);
  }
  const auto t0 = std::chrono::steady_clock::now();
  while (metrics(d + "/killed").empty() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  const size_t done = metrics(d + "/killed").size();
  ASSERT_GE(done, 1u);
  ASSERT_LT(done, 5u) << "the run finished before it could be killed";
  EXPECT_FALSE(fs::exists(d + "/killed/result.json"));
  auto r = cli("resume " + d + "/killed");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resuming"), std::string::npos) << r.out;
  const auto m = metrics(d + "/killed");
  ASSERT_EQ(m.size(), 5u);
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(m[i]["epoch"], i + 1);
  // Same weights as the uninterrupted run: nothing was lost or repeated.
  const auto a = train::load_weights(d + "/ref/weights.pt"), b = train::load_weights(d + "/killed/weights.pt");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::allclose(v.to(torch::kDouble), b.at(k).to(torch::kDouble), 1e-4, 1e-5)) << k;
  // Resuming a finished run changes nothing.
  r = cli("resume " + d + "/killed");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(metrics(d + "/killed").size(), 5u);
}

TEST(TrainCli, BadInputsFailClearly) {
  const test::ScratchDir scratch("bad");
  const std::string& d = scratch.path;
  ASSERT_EQ(cli("train " + kModel + " " + kData + " --epochs 1 --out " + d + "/t").rc, 0);
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"train " + kModel + " " + kData + " --epochs 1 --out " + d + "/t", "already holds a run"},
      {"train " + kModel + " " + kData + " --teacher " + d + "/missing --out " + d + "/x1", "not a finished run"},
      {"train " + kModel + " --data synthetic:3x16x16:5:64 --teacher " + d + "/t --out " + d + "/x2", "5 classes"},
      {"train " + kModel + " " + kData + " --schedule linear --out " + d + "/x3", "accepted: step, cosine"},
      {"train --model resnet99 " + kData + " --out " + d + "/x4", "unknown model family 'resnet99'"},
      {"train " + kModel + " --data cifar10:" + d + "/nowhere --out " + d + "/x5", d + "/nowhere"},
      {"train " + kModel + " --data imagenet --out " + d + "/x6", "imagenet"},
      {"train " + kModel + " " + kData + " --epochs 0 --out " + d + "/x7", "--epochs"},
      {"resume " + d + "/nothing", "no config.json"},
      {"eval " + d + "/nothing", "not a finished run"},
  };
  for (const auto& c : cases) {
    const auto r = cli(c.args);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
  // Refused runs leave no directory behind... (x2: the teacher check comes before any write)
  EXPECT_FALSE(fs::exists(d + "/x2/config.json"));
  // A corrupt checkpoint is named on resume.
  const std::string k = d + "/k";
  ASSERT_EQ(cli("train " + kModel + " " + kData + " --epochs 2 --out " + k).rc, 0);
  fs::remove(k + "/result.json");
  const std::string ck = util::read_file(k + "/checkpoint.pt");
  util::write_file_atomic(k + "/checkpoint.pt", ck.substr(0, ck.size() / 2));
  const auto r = cli("resume " + k);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("checkpoint.pt"), std::string::npos) << r.out;
  // A truncated weights file is named too.
  util::write_file_atomic(k + "/w.pt", "garbage");
  EXPECT_THROW(train::load_weights(k + "/w.pt"), std::runtime_error);
}

TEST(TrainCli, WeightsLoadInPythonPyTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const test::ScratchDir scratch("py");
  const std::string& d = scratch.path;
  ASSERT_EQ(cli("train --model resnet10:alpha=0.25:cull=S1:thin " + kData + " --epochs 1 --out " + d + "/r").rc, 0);
  const auto sd = train::load_weights(d + "/r/weights.pt");
  const std::string script = d + "/check.py";
  std::ofstream(script) << "import sys, torch\n"
                           "sd = torch.load(sys.argv[1])\n"
                           "assert isinstance(sd, dict), type(sd)\n"
                           "w = sd['layer2.0.conv1.weight']\n"
                           "print(len(sd), tuple(w.shape), float(w.double().sum()))\n";
  FILE* p = popen(("/usr/bin/python3 " + script + " " + d + "/r/weights.pt 2>&1").c_str(), "r");
  char buf[4096] = {0};
  const size_t n = fread(buf, 1, sizeof buf - 1, p);
  ASSERT_EQ(pclose(p), 0) << std::string(buf, n);
  const auto& w = sd.at("layer2.0.conv1.weight");
  std::istringstream out(std::string(buf, n));
  size_t count;
  std::string shape;
  double sum;
  out >> count;
  std::getline(out, shape, ')');
  out >> sum;
  EXPECT_EQ(count, sd.size());
  EXPECT_NEAR(sum, w.to(torch::kDouble).sum().item<double>(), 1e-6);
}
