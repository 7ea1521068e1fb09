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
#include "pipeline/jobs.h"
#include "pipeline/onnx_model.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"

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

// A network without BatchNorm (the exporter folds it into the convolutions)
// evaluated, trained one SGD step, and evaluated again computes with the
// trained weights: LibTorch's SGD updates parameters through .data(), which
// leaves their version counters as they were, so the fused inference plan
// must not outlive a training step on their versions alone (runs recorded
// the test accuracy of their first epoch's convolutions at later epochs).
TEST_F(Onnx, InferenceAfterATrainingStepUsesTheTrainedWeights) {
  const onnx::Model m = onnx::read_model(path("small_cnn.onnx"));
  for (const arch::Layer* l : m.net.layers()) ASSERT_NE(l->op, arch::Op::BatchNorm) << l->name;
  nn::Net net = pipeline::onnx_network(m), plain = pipeline::onnx_network(m);
  plain->set_exec_options({false, false, false, false, false, 0});
  const torch::Tensor x = torch::randn({8, 1, 28, 28});
  net->eval();
  {
    torch::NoGradGuard ng;
    net->forward(x);  // builds the fused plan
  }
  net->train();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.5));
  sgd.zero_grad();
  net->forward(x).pow(2).mean().backward();
  sgd.step();
  net->eval();
  torch::NoGradGuard ng;
  torch::OrderedDict<std::string, torch::Tensor> trained = net->named_parameters();
  for (auto& p : plain->named_parameters()) p.value().copy_(trained[p.key()]);
  plain->eval();
  const torch::Tensor a = net->forward(x), b = plain->forward(x);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-4 * std::max(1.0, b.abs().max().item<double>()));
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

// A model file is a spec's family: reduced by cull=/keep=/thin, trained
// from its own weights (--init-weights model.onnx) into a run, and that run
// runs privately (its 3x3 padded and 2x2 max poolings too) with the
// reference's argmax on every image.
TEST_F(Onnx, AModelFileIsASpecTrainsIntoARunAndRunsPrivately) {
  const std::string bin = std::string(DEEPREDUCE_BINARY) + " ";
  const std::string model = path("small_cnn.onnx");
  auto r = test::run_command(bin + "count " + model + ":cull=S1 --format json");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["relus"].get<int64_t>(), 10224 - 6272);  // S1: the stem's 8x28x28 ReLUs
  EXPECT_EQ(test::run_command(bin + "count " + model + ":thin --format json").rc, 0);
  for (const auto& [spec, words] : {std::pair{model + ":alpha=0.5", "does not apply to a model file"},
                                    std::pair{model + ":cull=S9", "unknown stage 'S9'"}}) {
    r = test::run_command(bin + "count " + spec);
    EXPECT_EQ(r.rc, 2) << spec;
    EXPECT_TRUE(test::contains(r.out, words)) << r.out;
  }
  if (!expected_["small_cnn"].contains("fashion_mnist_correct")) GTEST_SKIP() << "Fashion-MNIST is not installed";
  const test::ScratchDir d("onnx-run");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());  // the key ledger, not the user's
  r = test::run_command(bin + "train --model " + model + " --init-weights " + model +
                        " --data fashion-mnist --limit 512 --epochs 1 --lr 0.01 --threads 2 --out " + (d / "run"));
  ASSERT_EQ(r.rc, 0) << r.out;
  r = test::run_command(bin + "eval " + (d / "run") + " --threads 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "10,224 ReLUs")) << r.out;
  r = test::run_command(bin + "pi run " + (d / "run") + " --data fashion-mnist --count 4 --format json --quiet");
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto s = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(s["images"], 4);
  EXPECT_EQ(s["relus"], 10224);
  EXPECT_EQ(s["reference"]["argmax_equal"], 4) << s.dump();
  EXPECT_EQ(s["reference"]["failures"], 0) << s.dump();
}

// reduce's candidates of a model file go inside its --out (a spec holds the
// file's absolute path, which a run name must not carry).
TEST(OnnxRunNames, AModelFilesRunIsNamedByItsFileName) {
  EXPECT_EQ(pipeline::run_name("/data/models/cnn.onnx:cull=S1,S2"), "cnn.onnx_cull-S1+S2");
  EXPECT_EQ(pipeline::run_name("/data/models/cnn.onnx"), "cnn.onnx");
  EXPECT_EQ(pipeline::run_name("resnet18:cull=S1:thin=relu2"), "resnet18_cull-S1_thin-relu2");
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

// --- export: runs out, and back in ---------------------------------------

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

// A teacher (resnet10: ReLU sites after a convolution's BatchNorm and after
// residual adds), SNL runs with element-wise and channel-wise masks, and a
// polynomial-replacement run (channel-wise), made once (about 40 s on 2 cores).
class OnnxExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!onnx::available()) return;
    dir_ = std::make_unique<test::ScratchDir>("onnx-export");
    const std::string data = " --data synthetic:1x12x12:4:256 --batch 32 --threads 1 --workers 0";
    const std::string search = " --search-lr 0.01 --lasso 1e-4 --search-epochs 400 --epochs 2";
    for (const auto& [what, args] :
         {std::pair{"teacher", "train --model resnet10:alpha=0.125" + data + " --epochs 2 --out " + teacher()},
          std::pair{"snl", "linearize --teacher " + teacher() + data + search + " --budget 1500 --out " + (*dir_ / "snl")},
          std::pair{"snl-channel", "linearize --teacher " + teacher() + data + search +
                                       " --granularity channel --budget 1500 --out " + (*dir_ / "snl-channel")},
          std::pair{"poly", "linearize --teacher " + teacher() + data + search +
                                " --replace poly --granularity channel --budget 1500 --out " + (*dir_ / "poly")}}) {
      const auto r = cli(args);
      if (r.rc != 0) {
        failure_ = std::string(what) + ": " + r.out;
        return;
      }
    }
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!onnx::available()) GTEST_SKIP() << "built without libonnx-dev";
    ASSERT_TRUE(failure_.empty()) << failure_;
  }
  static std::string teacher() { return *dir_ / "teacher"; }
  static std::string masked() { return *dir_ / "snl/budget-1500"; }
  static std::string channel_masked() { return *dir_ / "snl-channel/budget-1500"; }
  static std::string poly() { return *dir_ / "poly/budget-1500"; }
  static std::vector<std::string> runs() { return {teacher(), masked(), channel_masked(), poly()}; }
  static std::string path(const std::string& name) { return *dir_ / name; }

  static inline std::unique_ptr<test::ScratchDir> dir_;
  static inline std::string failure_;
};

// The run's own network with its weights, in eval mode.
nn::Net run_net(const std::string& run) {
  nn::Net net(train::run_network(run));
  train::load_into(net, train::load_run_weights(run), true, run);
  net->eval();
  return net;
}

// Every site's ReLU and polynomial counts, by name.
std::map<std::string, std::pair<int64_t, int64_t>> site_counts(const arch::Network& net) {
  std::map<std::string, std::pair<int64_t, int64_t>> sites;
  for (const arch::Layer* l : net.layers())
    if (l->relus() > 0 || l->polys() > 0) sites[l->name] = {l->relus(), l->polys()};
  return sites;
}

// Each run, in each mask form, with and without --fold-bn, reads back with
// the same sites (ReLU and polynomial elements), FLOPs and logits.
TEST_F(OnnxExport, ExportThenImportGivesTheRunsCountsMasksAndLogits) {
  torch::NoGradGuard ng;
  for (const std::string& run : runs()) {
    for (const std::string masks : {"prelu", "onnxbridge"}) {
      for (const bool fold : {false, true}) {
        SCOPED_TRACE(run + " --masks " + masks + (fold ? " --fold-bn" : ""));
        const std::string out = path(fold ? "folded.onnx" : "plain.onnx");
        const auto r = cli("export " + run + " --out " + out + " --masks " + masks + (fold ? " --fold-bn" : ""));
        ASSERT_EQ(r.rc, 0) << r.out;
        EXPECT_EQ(test::contains(r.out, "BatchNorms folded"), fold) << r.out;
        const bool bridge = masks == "onnxbridge", snl = run == masked() || run == channel_masked();
        EXPECT_EQ(test::contains(r.out, "as PRelu"), !bridge && snl) << r.out;
        // OnnxBridge's form: a channel mask splits the convolution before it
        // (or selects its channels after an add), an element-wise mask is
        // Relu/Mul/Add; polynomials are Mul/Add in both forms.
        EXPECT_EQ(test::contains(r.out, "split by channels"), bridge && run == channel_masked()) << r.out;
        EXPECT_EQ(test::contains(r.out, "relu(x)*R + x*(1-R)"), bridge && run == masked()) << r.out;
        EXPECT_EQ(test::contains(r.out, "with polynomials as Mul/Add"), run == poly()) << r.out;
        const onnx::Model m = onnx::read_model(out);
        const arch::Network want = train::run_network(run);
        EXPECT_EQ(m.net.totals().relus, want.totals().relus);
        EXPECT_EQ(m.net.totals().polys, want.totals().polys);
        EXPECT_EQ(m.net.totals().flops, want.totals().flops);
        EXPECT_EQ(m.producer.rfind("deepreduce ", 0), 0u) << m.producer;
        EXPECT_EQ(site_counts(m.net), site_counts(want));
        nn::Net net = run_net(run), imported = pipeline::onnx_network(m);
        imported->eval();
        const torch::Tensor x = torch::randn({4, 1, 12, 12});
        const torch::Tensor a = net->forward(x), b = imported->forward(x);
        EXPECT_LT((a - b).abs().max().item<double>(), 1e-4 * std::max(1.0, a.abs().max().item<double>()));
      }
    }
  }
}

TEST_F(OnnxExport, PythonRunsTheExportedGraphAsTheTwinComputes) {
  if (std::system("/usr/bin/python3 -c 'import torch, onnx' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch and onnx";
  for (const std::string& run : runs()) {
    for (const std::string masks : {"prelu", "onnxbridge"}) {
      SCOPED_TRACE(run + " --masks " + masks);
      const std::string out = path("twin.onnx");
      const auto e = cli("export " + run + " --out " + out + " --masks " + masks);
      ASSERT_EQ(e.rc, 0) << e.out;
      const auto r = test::run_command("/usr/bin/python3 " DEEPREDUCE_SOURCE_DIR "/tests/torch/onnx_eval.py " + out +
                                       " " + run + " " DEEPREDUCE_BINARY " 2>/dev/null");
      ASSERT_EQ(r.rc, 0) << r.out;
      std::istringstream in(r.out);
      double diff = -1, scale = 0;
      int64_t relu_elements = -1;
      in >> diff >> scale >> relu_elements;
      EXPECT_GE(diff, 0) << r.out;
      EXPECT_LT(diff, 1e-4 * std::max(1.0, scale)) << r.out;
      // What a framework running the graph as written pays: the run's ReLUs
      // in OnnxBridge's form of a channel mask; a PRelu, and the Relu of an
      // element-wise mask's (or a polynomial site's) Mul/Add form, meet the
      // whole site.
      const int64_t relus = train::run_network(run).totals().relus;
      if (run == teacher() || (run == channel_masked() && masks == "onnxbridge"))
        EXPECT_EQ(relu_elements, relus);
      else
        EXPECT_GT(relu_elements, relus);
    }
  }
}

// pi run takes a model file with the normalisation it was trained with, and
// the exported channel-masked run (split convolutions) runs privately as the
// run itself does: the same ReLUs, the float model's and the reference's
// argmax on every image.
TEST_F(OnnxExport, AnExportedModelRunsPrivatelyAsItsRun) {
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", path("state").c_str());  // the key ledger, not the user's
  const std::string out = path("private.onnx");
  ASSERT_EQ(cli("export " + channel_masked() + " --out " + out + " --masks onnxbridge").rc, 0);
  const auto result = nlohmann::json::parse(util::read_file(channel_masked() + "/result.json"));
  const auto list = [](const nlohmann::json& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x.dump();
    return s;
  };
  const std::string pi = "pi run " + out + " --data synthetic:1x12x12:4:256 --count 4 --format json --quiet";
  auto r = cli(pi + " --mean " + list(result["mean"]) + " --std " + list(result["std"]));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto s = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(s["relus"], train::run_network(channel_masked()).totals().relus);
  EXPECT_EQ(s["agreement"], 1.0) << s.dump();
  EXPECT_EQ(s["reference"]["argmax_equal"], 4) << s.dump();
  r = cli(pi);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "give --mean and --std")) << r.out;
  r = cli("pi run " + channel_masked() + " --data synthetic:1x12x12:4:256 --count 1 --mean 0 --std 1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "normalises as it was trained")) << r.out;
}

TEST_F(OnnxExport, BadOutputsAndRunsAreRefusedAndWriteNothing) {
  auto r = cli("export " + teacher() + " --out " + path("model.txt"));
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(test::contains(r.out, "<name>.onnx")) << r.out;
  EXPECT_FALSE(util::file_exists(path("model.txt")));
  r = cli("export " + path("absent") + " --out " + path("absent.onnx"));
  EXPECT_NE(r.rc, 0);
  EXPECT_FALSE(util::file_exists(path("absent.onnx")));
  r = cli("export " + masked() + " --out " + path("bad-form.onnx") + " --masks split");
  EXPECT_NE(r.rc, 0);
  EXPECT_TRUE(test::contains(r.out, "prelu")) << r.out;
  EXPECT_FALSE(util::file_exists(path("bad-form.onnx")));
}

}  // namespace
}  // namespace dr
