// The one epoch loop (src/train/engine.h), directly: a training's hooks are
// called once per step, its extra loss terms reach the gradients, and a
// loss that is not finite stops the epoch with the hook's message.
#include <gtest/gtest.h>

#include "arch/spec.h"
#include "data/dataset.h"
#include "nn/net.h"
#include "test_util.h"
#include "train/common.h"
#include "train/engine.h"

namespace dr::train {
namespace {

// Counts the hook calls; extra_loss can be set.
struct CountingHooks : TrainingHooks {
  int64_t steps_seen = 0;
  std::function<torch::Tensor()> extra;
  void before_step(int64_t, int64_t step, int64_t) override { EXPECT_EQ(step, steps_seen++); }
  torch::Tensor extra_loss() override { return extra ? extra() : torch::Tensor(); }
  std::string diverged(double loss, int64_t epoch, int64_t step) const override {
    return "diverged at epoch " + std::to_string(epoch) + " step " + std::to_string(step) + " loss " +
           std::to_string(loss);
  }
  std::string progress_line(const StepProgress&) override { return ""; }
};

struct Fixture {
  TrainConfig cfg;
  data::DataSplit split = data::load_dataset("synthetic:1x12x12:4:64");
  nn::Net net{nullptr};
  std::unique_ptr<torch::optim::SGD> opt;
  std::unique_ptr<data::Batches> batches;
  Precision precision{"fp32", torch::kCPU};
  CoreSharing cores{1};
  Fixture() {
    cfg.data = "synthetic:1x12x12:4:64";
    cfg.batch = 16;
    cfg.workers = 0;
    cfg.pad = 2;  // as a run resolves it for 12x12 images (as_recorded)
    torch::manual_seed(0);
    net = nn::Net(arch::build_network("resnet6:alpha=0.125", input_of(split.train)));
    opt = std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.05));
    batches = train_batches(cfg, split.train, torch::kCPU);
  }
  TrainingEngine engine(TrainingHooks& hooks) {
    return TrainingEngine({net, nullptr, opt.get(), batches.get(), &precision, nullptr, &cores, torch::kCPU, cfg.batch,
                           split.train.size(), cfg.kd_T, cfg.kd_lambda},
                          hooks);
  }
};

TEST(Engine, TrainsAnEpochCallingTheHooksOncePerStep) {
  Fixture f;
  CountingHooks hooks;
  const torch::Tensor before = f.net->parameters().front().detach().clone();
  const TrainedEpoch e = f.engine(hooks).train_epoch(0);
  EXPECT_EQ(hooks.steps_seen, 4);  // 64 images in batches of 16
  EXPECT_EQ(e.stats.images, 64);
  EXPECT_TRUE(std::isfinite(e.stats.loss));
  EXPECT_GT(e.stats.loss, 0);
  EXPECT_FALSE(torch::equal(before, f.net->parameters().front()));
}

TEST(Engine, ExtraLossTermsReachTheGradients) {
  Fixture f, g;  // the same start
  // A term pulling every weight of g to zero: with it, the weights shrink more.
  const auto params = g.net->parameters();
  CountingHooks plain, pulled;
  pulled.extra = [&] {
    torch::Tensor s = torch::zeros({});
    for (const auto& p : params) s = s + 10 * p.pow(2).sum();
    return s;
  };
  f.engine(plain).train_epoch(0);
  g.engine(pulled).train_epoch(0);
  double norm_plain = 0, norm_pulled = 0;
  for (const auto& p : f.net->parameters()) norm_plain += p.pow(2).sum().item<double>();
  for (const auto& p : g.net->parameters()) norm_pulled += p.pow(2).sum().item<double>();
  EXPECT_LT(norm_pulled, norm_plain);
}

TEST(Engine, ANonFiniteLossStopsWithTheHooksMessage) {
  Fixture f;
  CountingHooks hooks;
  hooks.extra = [&] { return torch::full({}, std::nan("")); };
  const std::string e = test::message_of<std::runtime_error>([&] { f.engine(hooks).train_epoch(2); });
  EXPECT_TRUE(test::contains(e, "diverged at epoch 2 step 3 loss nan")) << e;  // read at the epoch's last step
}

}  // namespace
}  // namespace dr::train
