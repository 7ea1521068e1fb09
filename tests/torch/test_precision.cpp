// --precision: the autocast guard, fp16's loss scaling, and bf16 training
// end to end on the CPU (fp32 weights on disk, the precision recorded).
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/precision.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/provenance.h"
#include "util/strings.h"

using namespace dr;
using dr::test::contains;

namespace {

torch::Tensor conv_out(const torch::Tensor& x, const torch::Tensor& w) { return torch::conv2d(x, w); }

}  // namespace

TEST(Precision, AutocastGuardTurnsAutocastOnAndRestoresIt) {
  const torch::Tensor x = torch::randn({2, 3, 8, 8}), w = torch::randn({4, 3, 3, 3});
  EXPECT_EQ(conv_out(x, w).scalar_type(), torch::kFloat32);
  {
    train::AutocastGuard outer(torch::kCPU, torch::kBFloat16);
    EXPECT_EQ(conv_out(x, w).scalar_type(), torch::kBFloat16);
    {
      train::AutocastGuard inner(torch::kCPU, torch::kBFloat16);
      EXPECT_EQ(conv_out(x, w).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(conv_out(x, w).scalar_type(), torch::kBFloat16);  // the inner guard restored "on"
  }
  EXPECT_EQ(conv_out(x, w).scalar_type(), torch::kFloat32);
  EXPECT_EQ(train::Precision("fp32", torch::kCPU).autocast(), nullptr);
  EXPECT_NE(train::Precision("bf16", torch::kCPU).autocast(), nullptr);
}

TEST(Precision, LossScalerSkipsOverflowsHalvesAndGrows) {
  train::LossScaler s(1024.0, 3);
  torch::Tensor p = torch::zeros({3}, torch::requires_grad());
  p.mutable_grad() = torch::tensor({1024.f, -2048.f, 512.f});
  EXPECT_TRUE(s.unscale({p}));
  EXPECT_TRUE(torch::equal(p.grad(), torch::tensor({1.f, -2.f, 0.5f})));
  EXPECT_DOUBLE_EQ(s.scale(), 1024.0);
  EXPECT_TRUE(torch::equal(s.scaled(torch::tensor(2.f)), torch::tensor(2048.f)));

  p.mutable_grad() = torch::tensor({1.f, std::numeric_limits<float>::infinity(), 0.f});
  EXPECT_FALSE(s.unscale({p}));  // skip this step
  EXPECT_DOUBLE_EQ(s.scale(), 512.0);
  EXPECT_EQ(s.skipped(), 1);
  p.mutable_grad() = torch::tensor({std::nanf(""), 0.f, 0.f});
  EXPECT_FALSE(s.unscale({p}));
  EXPECT_DOUBLE_EQ(s.scale(), 256.0);

  for (int i = 0; i < 3; ++i) {  // three finite steps in a row double it
    p.mutable_grad() = torch::ones({3});
    EXPECT_TRUE(s.unscale({p}));
  }
  EXPECT_DOUBLE_EQ(s.scale(), 512.0);
  torch::Tensor no_grad = torch::zeros({2}, torch::requires_grad());
  EXPECT_TRUE(s.unscale({no_grad}));  // parameters without a gradient are left alone
}

TEST(Precision, RefusesFp16OnTheCpuAndUnknownNames) {
  try {
    train::Precision("fp16", torch::kCPU);
    ADD_FAILURE() << "fp16 accepted on the CPU";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "accepted on the CPU: fp32, bf16")) << e.what();
  }
  EXPECT_THROW(train::Precision("fp8", torch::kCPU), std::invalid_argument);
  train::TrainConfig c;
  c.model = "resnet6:alpha=0.125";
  c.data = "synthetic:1x8x8:4:64";
  c.precision = "tf32";
  try {
    c.validate();
    ADD_FAILURE() << "--precision tf32 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "--precision 'tf32' is not accepted (accepted: fp32, bf16, fp16)")) << e.what();
  }
}

// A bf16 run trains (its loss falls), keeps fp32 weights on disk and
// records its precision; the same run in fp32 is another run.
TEST(Precision, Bf16RunTrainsAndRecordsItsPrecision) {
  const test::ScratchDir d("bf16");
  train::TrainConfig c;
  c.model = "resnet6:alpha=0.25";
  c.data = "synthetic:3x16x16:4:512";
  c.epochs = 3;
  c.batch = 32;
  c.lr = 0.05;
  c.threads = 1;
  c.workers = 0;
  c.device = "cpu";
  c.precision = "bf16";
  c.out = d / "bf16";
  const train::RunResult r = train::train(c);
  EXPECT_GT(r.test_acc, 0.5) << "4 classes: chance is 0.25";
  const auto config = nlohmann::json::parse(util::read_file(c.out + "/config.json"));
  EXPECT_EQ(config.value("precision", ""), "bf16");
  for (const auto& [name, t] : train::load_run_weights(c.out)) {
    if (t.is_floating_point()) {
      EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
    }
  }
  std::vector<double> losses;
  for (const auto& line : util::split(util::read_file(c.out + "/metrics.jsonl"), '\n'))
    if (!line.empty()) losses.push_back(nlohmann::json::parse(line).at("train_loss").get<double>());
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_LT(losses.back(), losses.front());

  train::TrainConfig fp32 = c;
  fp32.precision = "fp32";
  EXPECT_NE(train::settings_sha256(fp32.to_json()), train::settings_sha256(c.to_json()));
  train::TrainConfig other_path = c;
  other_path.data_path = "host";  // the same batches: the same settings
  EXPECT_EQ(train::settings_sha256(other_path.to_json()), train::settings_sha256(c.to_json()));
}

// A config.json written before --precision and --data-path reads back with
// the values it ran with.
// bf16 on a CPU is fast only with AVX512_BF16 or AMX; elsewhere the run says so.
TEST(Precision, Bf16WarnsOnACpuWithoutBf16Kernels) {
  const std::vector<std::string> flags = util::cpu_kernel_flags();
  const bool fast = std::any_of(flags.begin(), flags.end(),
                                [](const std::string& f) { return f == "avx512_bf16" || f == "amx_bf16"; });
  const std::string w = train::Precision("bf16", torch::kCPU).warning();
  EXPECT_EQ(w.empty(), fast) << w;
  if (!fast) {
    EXPECT_NE(w.find("neither AVX512_BF16 nor AMX"), std::string::npos) << w;
  }
  EXPECT_EQ(train::Precision("fp32", torch::kCPU).warning(), "");
}

TEST(Precision, OlderConfigsAndCheckpointsRanInFp32) {
  nlohmann::json j = {{"model", "resnet6"}, {"data", "synthetic"}, {"epochs", 1}, {"batch", 8}, {"lr", 0.1}};
  const train::TrainConfig c = train::TrainConfig::from_json(j);
  EXPECT_EQ(c.precision, "fp32");
  EXPECT_EQ(c.data_path, "auto");
  // A checkpoint's settings from before --precision (also nested, as the SNL
  // search's "train") match an fp32 config and no other.
  const nlohmann::json now = c.result_settings(), search_now = {{"train", now}, {"budgets", {100}}};
  nlohmann::json before = now, search_before = search_now;
  before.erase("precision");
  search_before["train"].erase("precision");
  EXPECT_EQ(train::first_difference(now, "config.json", before, "checkpoint.pt", train::settings_before_they_existed()), "");
  EXPECT_EQ(train::first_difference(search_now, "config.json", search_before, "checkpoint.pt",
                                    train::settings_before_they_existed()),
            "");
  EXPECT_NE(train::first_difference(now, "config.json", before, "checkpoint.pt"), "");
  // Every setting newer than some runs, --clip-grad too: a checkpoint
  // without it resumes under a config.json with its old value, 0 (off).
  nlohmann::json unclipped = now;
  unclipped.erase("clip_grad");
  EXPECT_EQ(train::first_difference(now, "config.json", unclipped, "checkpoint.pt",
                                    train::settings_before_they_existed()),
            "");
  nlohmann::json bf16 = now;
  bf16["precision"] = "bf16";
  EXPECT_EQ(train::first_difference(bf16, "config.json", before, "checkpoint.pt", train::settings_before_they_existed()),
            "precision: \"bf16\" in config.json, \"fp32\" in checkpoint.pt");
}

// A run named by a relative path in one command and an absolute one in the
// other (a search's start_run or teacher) is one setting; two runs are not.
TEST(Settings, TwoSpellingsOfOneRunAreOneSetting) {
  const test::ScratchDir d("spelling");
  std::filesystem::create_directories(d / "t");
  std::filesystem::create_directories(d / "u");
  const std::string abs = std::filesystem::absolute(d / "t").string();
  const std::string rel = std::filesystem::relative(abs).string();
  ASSERT_NE(abs, rel);
  const nlohmann::json a = {{"start_run", abs}, {"train", {{"teacher", abs}}}};
  const nlohmann::json b = {{"start_run", rel}, {"train", {{"teacher", rel + "/"}}}};
  EXPECT_EQ(train::first_difference(a, "config.json", b, "this command"), "");
  const nlohmann::json other = {{"start_run", (d / "u")}, {"train", {{"teacher", rel}}}};
  EXPECT_NE(train::first_difference(a, "config.json", other, "this command"), "");
  const nlohmann::json missing = {{"start_run", d / "gone"}, {"train", {{"teacher", rel}}}};
  EXPECT_NE(train::first_difference(a, "config.json", missing, "this command"), "");
}
