// CUDA against the CPU: the same weights and batch give the same logits and
// the same SGD step on both devices, and a run trained on CUDA is evaluated
// and its checkpoint read on the CPU. Its own binary, test_cuda, with the
// ctest label "cuda" (`ctest -L cuda`); every test that needs a GPU skips
// where LibTorch finds none. The tolerances allow for TF32, which LibTorch
// uses for CUDA convolutions by default.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "arch/datasets.h"
#include "data/device_batches.h"
#include "nn/net.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/trainer.h"
#include "train/weights.h"

using namespace dr;

namespace {

#define SKIP_WITHOUT_CUDA()                                                   \
  if (!torch::cuda::is_available())                                           \
  GTEST_SKIP() << "no CUDA device for LibTorch " TORCH_VERSION " on this machine"

const char* kSpec = "resnet18:alpha=0.25";

// max |a - b| / max |b|, on the CPU in double precision.
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.detach().to(torch::kCPU, torch::kDouble), y = b.detach().to(torch::kCPU, torch::kDouble);
  return (x - y).abs().max().item<double>() / (1e-12 + y.abs().max().item<double>());
}

// Two copies of one network with the same weights: on the CPU and on CUDA.
std::pair<nn::Net, nn::Net> twins() {
  const auto in = arch::dataset_input("cifar10");
  torch::manual_seed(0);
  nn::Net cpu = nn::build(kSpec, in);
  cpu->init_parameters("kaiming", false);
  nn::Net gpu = nn::build(kSpec, in);
  train::load_into(gpu, train::state_dict(cpu), true, "the CPU twin's weights");
  gpu->to(torch::kCUDA);
  return {cpu, gpu};
}

torch::Tensor flat_parameters(nn::Net& net) {
  std::vector<torch::Tensor> ps;
  for (const auto& p : net->parameters()) ps.push_back(p.detach().to(torch::kCPU, torch::kDouble).flatten());
  return torch::cat(ps);
}

}  // namespace

// Runs everywhere: --device cuda is refused with a message where there is no
// GPU, and auto picks the GPU where there is one.
TEST(CudaDevice, ChoosesTheGpuOnlyWhereThereIsOne) {
  EXPECT_TRUE(train::resolve_device("cpu").is_cpu());
  if (torch::cuda::is_available()) {
    EXPECT_TRUE(train::resolve_device("cuda").is_cuda());
    EXPECT_TRUE(train::resolve_device("auto").is_cuda());
    EXPECT_GE(torch::cuda::device_count(), 1u);
  } else {
    EXPECT_THROW(train::resolve_device("cuda"), std::invalid_argument);
    EXPECT_TRUE(train::resolve_device("auto").is_cpu());
  }
}

TEST(Cuda, LogitsMatchTheCpu) {
  SKIP_WITHOUT_CUDA();
  auto [cpu, gpu] = twins();
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({16, 3, 32, 32});
  torch::NoGradGuard ng;
  cpu->eval();
  gpu->eval();
  const torch::Tensor a = cpu->forward(x);
  const torch::Tensor b = gpu->forward(x.to(torch::kCUDA));
  ASSERT_TRUE(b.is_cuda());
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_LT(rel_diff(b, a), 2e-2);
  EXPECT_TRUE(torch::equal(b.argmax(1).cpu(), a.argmax(1)) || rel_diff(b, a) < 1e-3);
}

TEST(Cuda, OneSgdStepMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  auto [cpu, gpu] = twins();
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({32, 3, 32, 32});
  const torch::Tensor y = torch::randint(0, 10, {32}, torch::kInt64);
  const torch::Tensor before = flat_parameters(cpu);
  auto step = [&](nn::Net& net, const torch::Device& dev) {
    net->train();
    torch::optim::SGD opt(net->parameters(),
                          torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(5e-4));
    opt.zero_grad();
    const torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x.to(dev)), y.to(dev));
    loss.backward();
    opt.step();
    return loss.item<double>();
  };
  const double loss_cpu = step(cpu, torch::kCPU);
  const double loss_gpu = step(gpu, torch::kCUDA);
  EXPECT_NEAR(loss_gpu, loss_cpu, 1e-2 * std::abs(loss_cpu));
  for (const auto& p : gpu->parameters()) EXPECT_TRUE(p.is_cuda());
  // The updates themselves agree, not only the (equal) starting weights.
  EXPECT_LT(rel_diff(flat_parameters(gpu) - before, flat_parameters(cpu) - before), 5e-2);
  // BatchNorm's running statistics were updated on the GPU alike.
  for (const auto& b : gpu->named_buffers())
    if (b.key().find("running_mean") != std::string::npos) {
      EXPECT_TRUE(b.value().is_cuda()) << b.key();
    }
}

// `deepreduce train --device cuda`, then the run on the CPU: eval from
// weights.pt, and checkpoint.pt (written from CUDA tensors) read into a CPU
// network, whose parameters stay on the CPU and equal weights.pt.
TEST(Cuda, RunTrainedOnCudaIsReadOnTheCpu) {
  SKIP_WITHOUT_CUDA();
  test::ScratchDir dir("cuda");
  const std::string run = dir / "run";
  const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " train --model " + kSpec +
                                   " --data synthetic:3x32x32:10:256 --epochs 1 --batch 64 --workers 1"
                                   " --device cuda --out " + run);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "on cuda")) << r.out;

  const nlohmann::json result = nlohmann::json::parse(std::ifstream(run + "/result.json"));
  const auto ev = train::evaluate(run, "", 0, "cpu");
  ASSERT_GT(ev.images, 0);
  // The same weights on another device: at most a borderline image or two flips.
  EXPECT_NEAR(ev.acc, result["test_acc"].get<double>(), 2.5 / static_cast<double>(ev.images));

  nn::Net net = nn::build(kSpec, arch::dataset_input("cifar10"));
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
  const train::Checkpoint c = train::load_checkpoint(run + "/checkpoint.pt", net, opt, "");
  EXPECT_EQ(c.epochs_done, 1);
  const train::StateDict w = train::load_weights(run + "/weights.pt");
  for (const auto& p : net->named_parameters()) {
    EXPECT_TRUE(p.value().device().is_cpu()) << p.key() << " was loaded onto " << p.value().device();
    ASSERT_TRUE(w.count(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value().detach().cpu(), w.at(p.key()))) << p.key();
  }
}

// The device-resident batches on the GPU are the host loader's, bit for bit:
// the same integers drive the same exact gathers and table look-ups.
TEST(Cuda, DeviceBatchesEqualTheHostLoader) {
  SKIP_WITHOUT_CUDA();
  data::Dataset d;
  d.name = "random";
  torch::manual_seed(3);
  d.images = torch::randint(0, 256, {300, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  d.labels = torch::randint(0, 10, {300}, torch::kInt64);
  d.classes = 10;
  data::compute_mean_std(d);
  data::LoaderOptions o;
  o.batch = 64, o.pad = 4, o.seed = 9, o.workers = 1;
  data::BatchLoader host(d, o);
  data::DeviceBatches gpu(d, o, torch::kCUDA);
  host.start_epoch(2);
  gpu.start_epoch(2);
  torch::Tensor a, ya, b, yb;
  int64_t n = 0;
  while (host.next(a, ya)) {
    ASSERT_TRUE(gpu.next(b, yb));
    EXPECT_TRUE(b.is_cuda());
    EXPECT_TRUE(torch::equal(b.cpu(), a)) << "batch " << n;
    EXPECT_TRUE(torch::equal(yb.cpu(), ya)) << "batch " << n;
    ++n;
  }
  EXPECT_FALSE(gpu.next(b, yb));
  EXPECT_EQ(n, 5);
}

// bf16 and fp16 (with loss scaling) train on the GPU: the loss falls and the
// weights on disk are fp32.
TEST(Cuda, MixedPrecisionRunsTrain) {
  SKIP_WITHOUT_CUDA();
  for (const std::string precision : {"bf16", "fp16"}) {
    test::ScratchDir dir("cuda-" + precision);
    const std::string run = dir / "run";
    const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " train --model " + kSpec +
                                     " --data synthetic:3x32x32:10:1024 --epochs 3 --batch 64 --lr 0.05"
                                     " --device cuda --precision " + precision + " --out " + run);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(test::contains(r.out, "in " + precision)) << r.out;
    std::ifstream metrics(run + "/metrics.jsonl");
    std::vector<double> losses;
    for (std::string line; std::getline(metrics, line);)
      losses.push_back(nlohmann::json::parse(line).at("train_loss").get<double>());
    ASSERT_EQ(losses.size(), 3u) << precision;
    EXPECT_LT(losses.back(), losses.front()) << precision;
    EXPECT_GT(nlohmann::json::parse(std::ifstream(run + "/result.json"))["test_acc"].get<double>(), 0.3) << precision;
    for (const auto& [name, t] : train::load_weights(run + "/weights.pt")) {
      if (t.is_floating_point()) {
        EXPECT_EQ(t.scalar_type(), torch::kFloat32) << precision << " " << name;
      }
    }
  }
}
