// ONNX models in (src/onnx, pipeline/onnx_model): models PyTorch exported
// (tests/torch/onnx_models.py: torchvision's ResNet18 at 32x32, folded and
// with BatchNorm, and at 224x224; a small CNN with max pooling, a depthwise
// convolution, residual adds, Dropout and a view() flatten) against what
// PyTorch counts and computes; damaged and hostile files.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "onnx/reader.h"
#include "pipeline/onnx_model.h"
#include "test_paths.h"
#include "test_util.h"

namespace dr {
namespace {

// The exported models, made once for the suite (about 10 s).
class Onnx : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!onnx::available()) return;
    if (std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' > /dev/null 2>&1") != 0) return;
    dir_ = std::make_unique<test::ScratchDir>("onnx");
    const auto r = test::run_command("/usr/bin/python3 " DEEPREDUCE_SOURCE_DIR "/tests/torch/onnx_models.py " +
                                     dir_->path);
    if (r.rc != 0) {
      failure_ = r.out;
      return;
    }
    expected_ = nlohmann::json::parse(std::ifstream(*dir_ / "expected.json"));
    ready_ = true;
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!onnx::available()) GTEST_SKIP() << "built without libonnx-dev";
    ASSERT_TRUE(failure_.empty()) << "onnx_models.py failed:\n" << failure_;
    if (!ready_) GTEST_SKIP() << "/usr/bin/python3 cannot import torch, torchvision and onnx";
  }
  static std::string path(const std::string& name) { return *dir_ / name; }

  static std::vector<float> floats(const std::string& file) {
    std::ifstream f(file, std::ios::binary | std::ios::ate);
    std::vector<float> v(static_cast<size_t>(f.tellg()) / sizeof(float));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
    return v;
  }

  static inline std::unique_ptr<test::ScratchDir> dir_;
  static inline nlohmann::json expected_;
  static inline std::string failure_;
  static inline bool ready_ = false;
};

const char* const kModels[] = {"resnet18_32_folded", "resnet18_32_bn", "resnet18_224", "small_cnn"};

TEST_F(Onnx, CountsEqualWhatPyTorchsForwardHooksCount) {
  for (const std::string name : kModels) {
    SCOPED_TRACE(name);
    const onnx::Model m = onnx::read_model(path(name + ".onnx"));
    const auto& e = expected_[name];
    const arch::Totals t = m.net.totals();
    EXPECT_EQ(t.relus, e["relus"].get<int64_t>());
    EXPECT_EQ(t.flops, e["flops"].get<int64_t>());
    EXPECT_EQ(m.net.input.str(), e["input"].get<std::string>());
    EXPECT_EQ(m.net.classes, e["classes"].get<int64_t>());
    EXPECT_EQ(m.opset, 13);
    // With BatchNorm kept, the parameters are PyTorch's; folded, each
    // BatchNorm's 2C became its convolution's C biases.
    if (name == "resnet18_32_bn") {
      EXPECT_EQ(t.params, e["params"].get<int64_t>());
    }
  }
  // torchvision's ResNet18 on 32x32: the 7x7/2 stem and 3x3/2 max pool make
  // five resolutions, five stages; the ReLU after each add is relu2.
  const onnx::Model r = onnx::read_model(path("resnet18_32_bn.onnx"));
  EXPECT_EQ(r.net.stages, (std::vector<std::string>{"S1", "S2", "S3", "S4", "S5"}));
  int residual = 0;
  for (const auto& b : r.net.blocks)
    if (b.residual) {
      if (residual == 0) {
        EXPECT_EQ(b.name, "layer1.0");  // named by PyTorch's module paths
      }
      ++residual;
      ASSERT_EQ(b.post.size(), 1u) << b.name;
      EXPECT_EQ(b.post[0].role, "relu2");
    }
  EXPECT_EQ(residual, 8);
}

TEST_F(Onnx, LogitsEqualPyTorchsOnEveryExecutionPath) {
  torch::NoGradGuard ng;
  for (const std::string name : kModels) {
    SCOPED_TRACE(name);
    const onnx::Model m = onnx::read_model(path(name + ".onnx"));
    nn::Net net = pipeline::onnx_network(m);
    net->eval();
    std::vector<float> in = floats(path(name + ".inputs.f32")), want = floats(path(name + ".logits.f32"));
    const arch::Shape s = m.net.input;
    const int64_t n = static_cast<int64_t>(in.size()) / s.numel();
    const torch::Tensor x = torch::from_blob(in.data(), {n, s.c, s.h, s.w}).clone();
    const torch::Tensor ref = torch::from_blob(want.data(), {n, m.net.classes}).clone();
    for (const bool plain : {false, true}) {
      nn::ExecOptions o;
      if (plain) o = {false, false, false, false, false, 0};
      net->set_exec_options(o);
      const torch::Tensor y = net->forward(x);
      const double err = (y - ref).abs().max().item<double>(), scale = ref.abs().max().item<double>();
      EXPECT_LT(err, 1e-4 * std::max(1.0, scale)) << (plain ? "plain" : "fused") << " path";
    }
  }
}

TEST_F(Onnx, EvalOnFashionMnistAgreesWithPyTorch) {
  const auto& e = expected_["small_cnn"];
  if (!e.contains("fashion_mnist_correct")) GTEST_SKIP() << "Fashion-MNIST is not installed";
  const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " eval " + path("small_cnn.onnx") +
                                   " --data fashion-mnist --mean 0.2860 --std 0.3530 --threads 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto at = r.out.find("test accuracy ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double acc = std::stod(r.out.substr(at + 14));
  // Argmax ties and float reordering may move an image or two.
  EXPECT_NEAR(acc * e["fashion_mnist_images"].get<double>(), e["fashion_mnist_correct"].get<double>(), 2.5) << r.out;
  EXPECT_TRUE(test::contains(r.out, "10,224 ReLUs")) << r.out;
}

TEST_F(Onnx, CountAndCostTakeAModelAndRefuseAnotherInputForIt) {
  const std::string bin = DEEPREDUCE_BINARY;
  auto r = test::run_command(bin + " count " + path("small_cnn.onnx") + " --layers");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "10,224 ReLUs")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "stem.0")) << r.out;  // PyTorch's module paths name the layers
  r = test::run_command(bin + " cost " + path("small_cnn.onnx"));
  EXPECT_EQ(r.rc, 0) << r.out;
  r = test::run_command(bin + " count " + path("small_cnn.onnx") + " --dataset cifar10");
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(test::contains(r.out, "has its own input")) << r.out;
  r = test::run_command(bin + " eval " + path("small_cnn.onnx"));
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(test::contains(r.out, "give --data")) << r.out;
  r = test::run_command(bin + " eval " + path("small_cnn.onnx") + " --data fashion-mnist --mean 0.1,0.2");
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(test::contains(r.out, "--mean has 2 values for 1 channels")) << r.out;
}

TEST_F(Onnx, DamagedAndHostileFilesAreRefusedNamingTheFileAndWhy) {
  ASSERT_GE(expected_["bad"].size(), 10u);
  for (const auto& [file, words] : expected_["bad"].items()) {
    SCOPED_TRACE(file);
    const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " count " + path(file));
    EXPECT_GT(r.rc, 0) << r.out;  // an error exit, not a crash
    EXPECT_TRUE(test::contains(r.out, path(file) + ": ")) << r.out;
    for (const auto& w : words) EXPECT_TRUE(test::contains(r.out, w.get<std::string>())) << r.out;
    EXPECT_FALSE(test::contains(r.out, "terminate")) << r.out;
  }
  // A missing file.
  const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " count " + path("absent.onnx"));
  EXPECT_GT(r.rc, 0);
  EXPECT_TRUE(test::contains(r.out, "cannot open")) << r.out;
}

}  // namespace
}  // namespace dr
