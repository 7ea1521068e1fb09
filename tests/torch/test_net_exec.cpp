// nn::Net execution levers: the fused inference plan (BatchNorm folded into
// convolutions, oneDNN blocked tensors, chunked batches) and channels-last
// must compute what the plain modules compute; synchronised BatchNorm with a
// single rank must be ordinary BatchNorm, gradients and running statistics
// included.
#include <gtest/gtest.h>

#include "arch/spec.h"
#include "nn/net.h"
#include "nn/onednn.h"

using namespace dr;

namespace {

// Non-trivial BatchNorm statistics and affine parameters, so folding matters.
void randomise_batch_norms(nn::Net& net) {
  torch::NoGradGuard ng;
  for (auto& item : net->named_buffers()) {
    const auto& name = item.key();
    if (name.size() > 12 && name.substr(name.size() - 12) == "running_mean") item.value().normal_(0, 0.3);
    if (name.size() > 11 && name.substr(name.size() - 11) == "running_var") item.value().uniform_(0.5, 2.0);
  }
  for (auto& item : net->named_parameters()) {
    const auto& name = item.key();
    if (name.find("bn") != std::string::npos || name.find("shortcut.1") != std::string::npos) {
      if (name.size() > 6 && name.substr(name.size() - 6) == "weight") item.value().uniform_(0.5, 1.5);
      if (name.size() > 4 && name.substr(name.size() - 4) == "bias") item.value().normal_(0, 0.2);
    }
  }
}

torch::Tensor eval_with(nn::Net& net, const nn::ExecOptions& o, const torch::Tensor& x) {
  net->set_exec_options(o);
  net->eval();
  torch::NoGradGuard ng;
  return net->forward(x);
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / (b.abs().max() + 1e-6)).item<double>();
}

}  // namespace

TEST(NetExec, FusedInferenceEqualsUnfused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"resnet18:alpha=0.25", "cifar10"},         {"resnet18:cull=S1:thin:alpha=0.25", "cifar100"},
      {"resnet20", "cifar10"},                    {"vgg16:alpha=0.25", "cifar10"},
      {"mobilenetv1:alpha=0.25:thin=dw", "cifar10"}, {"mobilenetv2:alpha=0.5", "cifar10"},
      {"resnet6:rho=0.5", "fashion-mnist"},
  };
  for (const auto& [spec, data] : cases) {
    torch::manual_seed(1);
    const auto in = arch::dataset_input(data);
    nn::Net net = nn::build(spec, in);
    randomise_batch_norms(net);
    const auto x = torch::randn({40, in.shape.c, in.shape.h, in.shape.w});
    nn::ExecOptions plain;
    plain.channels_last = false;
    plain.fuse_inference = false;
    const auto want = eval_with(net, plain, x);

    nn::ExecOptions cl = plain;
    cl.channels_last = true;
    EXPECT_LT(rel_diff(eval_with(net, cl, x), want), 1e-5) << spec << " channels-last";

    nn::ExecOptions folded = cl;
    folded.fuse_inference = true;
    folded.mkldnn_inference = false;
    EXPECT_LT(rel_diff(eval_with(net, folded, x), want), 1e-4) << spec << " BatchNorm folded";

    nn::ExecOptions aten_mk = folded;
    aten_mk.mkldnn_inference = true;
    aten_mk.onednn_program = false;
    aten_mk.inference_chunk_bytes = 0;
    EXPECT_LT(rel_diff(eval_with(net, aten_mk, x), want), 1e-4) << spec << " LibTorch oneDNN tensors";

    nn::ExecOptions direct = aten_mk;
    direct.onednn_program = true;
    direct.winograd = false;
    EXPECT_LT(rel_diff(eval_with(net, direct, x), want), 1e-4) << spec << " oneDNN program";

    nn::ExecOptions mk = direct;
    mk.winograd = true;
    EXPECT_LT(rel_diff(eval_with(net, mk, x), want), 1e-4) << spec << " oneDNN program, Winograd";

    nn::ExecOptions chunked = mk;
    chunked.inference_chunk_bytes = 1;  // one image per chunk
    const auto y = eval_with(net, chunked, x);
    EXPECT_EQ(y.sizes(), want.sizes()) << spec;
    EXPECT_LT(rel_diff(y, want), 1e-4) << spec << " chunked";
  }
}

TEST(NetExec, OneDnnProgramCoversTheConvolutionalPart) {
  if (!nn::onednn::available()) GTEST_SKIP() << "built without oneDNN headers (libdnnl-dev)";
  const auto r18 = arch::build_network("resnet18:cull=S1:thin", arch::dataset_input("cifar10"));
  auto p = nn::onednn::compile(r18, true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->covered_blocks(), static_cast<int>(r18.blocks.size()) - 1);  // all but the FC head
  EXPECT_EQ(p->output_shape(), (arch::Shape{512, 4, 4}));
  const auto vgg = arch::build_network("vgg16:alpha=0.25", arch::dataset_input("cifar10"));
  auto q = nn::onednn::compile(vgg, true);
  ASSERT_TRUE(q);
  EXPECT_GT(q->covered_blocks(), 0);
  std::cout << "[ info ] Winograd convolutions in resnet18 for a batch of 8: " << p->winograd_convs(8)
            << " (0 on CPUs without AVX-512)\n";
}

TEST(NetExec, FusedInferenceOnAnotherInputSize) {
  // Built for 32x32, fed 40x40: the oneDNN program (compiled for 32x32) must
  // step aside; the modules accept any size.
  torch::manual_seed(8);
  nn::Net net = nn::build("resnet10:alpha=0.25", arch::dataset_input("cifar10"));
  randomise_batch_norms(net);
  const auto x = torch::randn({3, 3, 40, 40});
  nn::ExecOptions plain;
  plain.fuse_inference = false;
  const auto want = eval_with(net, plain, x);
  EXPECT_LT(rel_diff(eval_with(net, {}, x), want), 1e-4);
}

TEST(NetExec, FusedPlanFollowsWeightChanges) {
  torch::manual_seed(2);
  const auto in = arch::dataset_input("cifar10");
  nn::Net net = nn::build("resnet10:alpha=0.25", in);
  randomise_batch_norms(net);
  const auto x = torch::randn({8, 3, 32, 32});
  const auto before = eval_with(net, {}, x);
  // One training step changes weights and running statistics in place.
  net->train();
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  torch::nn::functional::cross_entropy(net->forward(x), torch::randint(10, {8}, torch::kInt64)).backward();
  opt.step();
  const auto fused = eval_with(net, {}, x);
  nn::ExecOptions plain;
  plain.fuse_inference = false;
  const auto want = eval_with(net, plain, x);
  EXPECT_GT(rel_diff(fused, before), 1e-3);
  EXPECT_LT(rel_diff(fused, want), 1e-4);
}

TEST(NetExec, ObserverSeesTheSameReluOutputsWhenFused) {
  torch::manual_seed(3);
  const auto in = arch::dataset_input("cifar10");
  nn::Net net = nn::build("resnet18:cull=S2:thin:alpha=0.25", in);
  randomise_batch_norms(net);
  const auto x = torch::randn({4, 3, 32, 32});
  auto record = [&](const nn::ExecOptions& o) {
    std::map<std::string, torch::Tensor> seen;
    net->set_relu_observer([&](const std::string& n, const torch::Tensor& t) { seen[n] = t.clone(); });
    eval_with(net, o, x);
    net->set_relu_observer(nullptr);
    return seen;
  };
  nn::ExecOptions plain;
  plain.fuse_inference = false;
  plain.channels_last = false;
  const auto want = record(plain), got = record({});
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_LT(rel_diff(got.at(name), t), 1e-4) << name;
  }
}

TEST(NetExec, ChannelsLastTrainingMatchesContiguous) {
  const auto in = arch::dataset_input("cifar10");
  torch::manual_seed(7);
  const auto x = torch::randn({6, 3, 32, 32});
  const auto y = torch::randint(10, {6}, torch::kInt64);
  std::vector<torch::Tensor> grads;  // all gradients, flattened and concatenated
  for (bool cl : {false, true}) {
    torch::manual_seed(4);
    nn::Net net = nn::build("resnet10:alpha=0.25:thin", in);
    nn::ExecOptions o;
    o.channels_last = cl;
    net->set_exec_options(o);
    net->train();
    torch::nn::functional::cross_entropy(net->forward(x), y).backward();
    std::vector<torch::Tensor> g;
    for (const auto& p : net->named_parameters()) g.push_back(p.value().grad().contiguous().flatten());
    grads.push_back(torch::cat(g));
  }
  // A norm over all gradients: a few nearly cancelling ones (BatchNorm
  // biases) carry float rounding noise of ~1e-3 of their own size.
  EXPECT_LT(((grads[1] - grads[0]).norm() / grads[0].norm()).item<double>(), 1e-4);
}

// With one rank the all-reduce is the identity: synchronised BatchNorm must
// then be the ordinary one (outputs, input and parameter gradients, running
// statistics). In float64, so that only the algebra is compared (in float32
// some nearly cancelling gradients carry ~1e-3 relative rounding noise).
TEST(NetExec, SyncedBatchNormWithOneRankIsBatchNorm) {
  const auto in = arch::dataset_input("cifar10");
  torch::manual_seed(6);
  const auto x = torch::randn({8, 3, 32, 32}, torch::kFloat64);
  const auto y = torch::randint(10, {8}, torch::kInt64);
  struct Out {
    torch::Tensor loss, xgrad;
    std::map<std::string, torch::Tensor> grads, buffers;
  };
  std::vector<Out> outs;
  int calls = 0;
  for (bool sync : {false, true}) {
    torch::manual_seed(5);
    nn::Net net = nn::build("resnet10:alpha=0.25", in);
    net->to(torch::kFloat64);
    if (sync) net->set_batch_norm_sync([&](torch::Tensor&) { ++calls; });
    net->train();
    auto xi = x.clone().requires_grad_();
    Out o;
    o.loss = torch::nn::functional::cross_entropy(net->forward(xi), y);
    o.loss.backward();
    o.xgrad = xi.grad();
    for (const auto& p : net->named_parameters()) o.grads[p.key()] = p.value().grad().contiguous();
    for (const auto& b : net->named_buffers()) o.buffers[b.key()] = b.value().clone();
    outs.push_back(o);
  }
  EXPECT_GT(calls, 0);
  EXPECT_NEAR(outs[1].loss.item<double>(), outs[0].loss.item<double>(), 1e-12);
  EXPECT_LT(rel_diff(outs[1].xgrad, outs[0].xgrad), 1e-9);
  for (const auto& [name, g] : outs[0].grads) EXPECT_LT(rel_diff(outs[1].grads.at(name), g), 1e-9) << name;
  for (const auto& [name, b] : outs[0].buffers)
    EXPECT_LT(rel_diff(outs[1].buffers.at(name).to(torch::kFloat64), b.to(torch::kFloat64)), 1e-9) << name;
}
