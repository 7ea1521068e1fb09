// LibTorch networks built from descriptions: a forward pass counts the
// elements through live ReLUs and must equal the static count.
#include <gtest/gtest.h>

#include <cmath>

#include "arch/spec.h"
#include "nn/net.h"

using namespace dr;

namespace {

struct Case {
  std::string spec, dataset;
};

int64_t counted_relus(nn::Net& net, const arch::InputSpec& in, int64_t batch, torch::Tensor* out = nullptr) {
  int64_t seen = 0;
  net->set_relu_observer([&](const std::string&, const torch::Tensor& t) { seen += t.numel(); });
  torch::NoGradGuard ng;
  net->eval();
  auto y = net->forward(torch::randn({batch, in.shape.c, in.shape.h, in.shape.w}));
  if (out) *out = y;
  net->set_relu_observer(nullptr);
  return seen / batch;
}

}  // namespace

TEST(Net, LiveReluCountMatchesDescription) {
  const std::vector<Case> cases = {
      {"resnet18", "cifar100"},
      {"resnet18:cull=S1,S4:thin", "cifar10"},
      {"resnet18:keep=S2:alpha=0.5", "tinyimagenet"},
      {"resnet18:thin=relu1:rho=0.5", "cifar100"},
      {"resnet18:blocks=2,1,1,1:alpha=0.25", "fashion-mnist"},
      {"resnet10:alpha=0.25", "cifar10"},
      {"resnet6:rho=0.5", "cifar100"},
      {"resnet34:cull=S1:thin:alpha=0.25", "cifar10"},
      {"resnet20", "cifar10"},
      {"resnet56:keep=S3", "cifar100"},
      {"vgg16:keep=S2,S3:thin:alpha=0.5", "cifar10"},
      {"vgg16:cull=S4,S5:alpha=0.25", "tinyimagenet"},
      {"mobilenetv1:cull=S1:thin=dw:alpha=0.5", "cifar100"},
      {"mobilenetv1:thin=pw:rho=0.5", "tinyimagenet"},
      {"mobilenetv1:alpha=0.25", "fashion-mnist"},
      {"mobilenetv2:alpha=0.5", "cifar10"},
      {"mobilenetv2:keep=S2,S3:thin=pw:alpha=0.5", "fashion-mnist"},
  };
  for (const auto& c : cases) {
    const auto in = arch::dataset_input(c.dataset);
    nn::Net net = nn::build(c.spec, in);
    torch::Tensor y;
    EXPECT_EQ(counted_relus(net, in, 2, &y), net->desc().totals().relus) << c.spec << " on " << c.dataset;
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, in.classes})) << c.spec;
    int64_t params = 0;
    for (const auto& p : net->parameters()) params += p.numel();
    EXPECT_EQ(params, net->desc().totals().params) << c.spec;
  }
}

TEST(Net, ModuleNamesFollowTheDescription) {
  nn::Net net = nn::build("resnet18:cull=S1:thin", arch::dataset_input("cifar10"));
  std::set<std::string> modules;
  for (const auto& item : net->named_modules("", false)) modules.insert(item.key());
  int live = 0, dead = 0;
  for (const auto* l : net->desc().layers()) {
    if (l->op == arch::Op::ReLU) {
      EXPECT_EQ(modules.count(l->name), l->live ? 1u : 0u) << l->name;
      (l->live ? live : dead)++;
    }
    if (l->op == arch::Op::Conv || l->op == arch::Op::BatchNorm || l->op == arch::Op::Linear) {
      EXPECT_EQ(modules.count(l->name), 1u) << l->name;
    }
  }
  EXPECT_EQ(live, 6);  // relu1 of both blocks of S2..S4
  EXPECT_GT(dead, 0);
  const auto params = net->named_parameters();
  EXPECT_NE(params.find("layer2.0.shortcut.0.weight"), nullptr);
  EXPECT_NE(params.find("head.fc.bias"), nullptr);
  EXPECT_NE(net->named_buffers().find("stem.bn.running_mean"), nullptr);
}

TEST(Net, TrainsOneStepWithGradients) {
  nn::Net net = nn::build("resnet10:alpha=0.25:cull=S1:thin", arch::dataset_input("cifar10"));
  net->train();
  auto x = torch::randn({4, 3, 32, 32});
  auto loss = torch::nn::functional::cross_entropy(net->forward(x), torch::tensor({0, 1, 2, 3}));
  loss.backward();
  for (const auto& p : net->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << p.key();
}

TEST(Net, ZeroInitResidualStartsEveryBlockAsItsShortcut) {
  nn::Net net = nn::build("resnet18:alpha=0.25", arch::dataset_input("cifar10"));
  net->init_parameters("torch", true);
  const auto params = net->named_parameters();
  // The last BatchNorm of each of the 8 residual bodies, and no other.
  int zero = 0;
  for (const auto& p : params)
    if (p.key().size() > 7 && p.key().substr(p.key().size() - 7) == ".weight" && p.value().dim() == 1 &&
        p.value().abs().sum().item<double>() == 0)
      ++zero;
  EXPECT_EQ(zero, 8);
  EXPECT_EQ(params["layer1.0.bn2.weight"].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(params["layer1.0.bn1.weight"].min().item<double>(), 1.0);
  EXPECT_EQ(params["layer2.0.shortcut.1.weight"].min().item<double>(), 1.0);
  // Networks without residual blocks are left alone.
  nn::Net vgg = nn::build("vgg16:alpha=0.25", arch::dataset_input("cifar10"));
  vgg->init_parameters("torch", true);
  for (const auto& p : vgg->named_parameters()) {
    if (p.value().dim() == 1 && p.key().find("bn") != std::string::npos &&
        p.key().find(".weight") != std::string::npos) {
      EXPECT_EQ(p.value().min().item<double>(), 1.0) << p.key();
    }
  }
}

TEST(Net, KaimingInitDrawsHeNormalFanOut) {
  torch::manual_seed(0);
  nn::Net net = nn::build("resnet18", arch::dataset_input("cifar10"));
  net->init_parameters("kaiming", false);
  const auto w = net->named_parameters()["layer4.0.conv2.weight"];  // 512x512x3x3
  const double fan_out = 512.0 * 9;
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / fan_out), 0.02 * std::sqrt(2.0 / fan_out));
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 1e-3);
  EXPECT_THROW(net->init_parameters("xavier", false), std::invalid_argument);
}

namespace {
// Input and parameter gradients of a backward pass on x, with BatchNorm in
// eval mode (batch statistics of 4 images would amplify rounding
// differences between the memory formats far past any tolerance).
std::vector<torch::Tensor> step_gradients(nn::Net& net, const torch::Tensor& x) {
  net->eval();
  net->zero_grad();
  torch::Tensor in = x.clone().requires_grad_(true);
  torch::Tensor y = net->forward(in);
  (y * y).sum().backward();
  std::vector<torch::Tensor> g{in.grad()};
  for (const auto& p : net->parameters()) g.push_back(p.grad().contiguous());
  return g;
}
}  // namespace

// oneDNN 2.6's backward pass of a strided 1x1 convolution on channels-last
// input with a channel count that is not a multiple of 16 corrupted the heap
// from about 48x48 pixels (TinyImageNet's 64x64 at alpha 0.125 crashed; see
// nn::conv2d). Every stem width 1..16 at 64x64 trains, with the
// gradients of the contiguous (NCHW) path.
TEST(Net, NarrowResNetsTrainAt64x64WithTheGradientsOfTheNchwPath) {
  const arch::InputSpec in = arch::dataset_input("tinyimagenet");
  for (int width = 1; width <= 16; ++width) {
    const std::string spec = "resnet18:alpha=" + std::to_string(width / 64.0);
    torch::manual_seed(width);
    nn::Net cl = nn::build(spec, in), nchw = nn::build(spec, in);
    {
      torch::NoGradGuard ng;
      auto src = cl->parameters(), dst = nchw->parameters();
      for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
    }
    nn::ExecOptions plain = nchw->exec_options();
    plain.channels_last = false;
    nchw->set_exec_options(plain);
    const torch::Tensor x = torch::randn({4, in.shape.c, in.shape.h, in.shape.w});
    const auto a = step_gradients(cl, x), b = step_gradients(nchw, x);
    ASSERT_EQ(a.size(), b.size()) << spec;
    for (size_t i = 0; i < a.size(); ++i) {
      const double err = (a[i] - b[i]).norm().item<double>(), ref = b[i].norm().item<double>();
      EXPECT_LE(err, 1e-4 * ref + 1e-6) << spec << " gradient " << i << " (norm " << ref << ")";
    }
  }
}

// A method's activation (SNL's masks, a polynomial) replaces relu(x) at the
// plain ReLU sites only: a masked site keeps its mask, a culled one stays an
// identity; in eval mode it takes the unfused path; null restores the ReLUs.
TEST(Net, SiteActivationReplacesThePlainReluSites) {
  const auto in = arch::dataset_input("cifar10");
  arch::Network desc = arch::build_network("resnet10:alpha=0.125:cull=S4", in);
  int64_t plain = 0;
  for (auto* l : desc.mutable_layers())
    if (l->op == arch::Op::ReLU && l->live) {
      if (l->name == "layer1.0.relu1") {  // half its channels kept
        auto m = std::make_shared<arch::ReluMask>();
        m->channelwise = true;
        m->ops.assign(size_t(l->out.c), 0);
        for (size_t c = 0; c < m->ops.size(); c += 2) m->ops[c] = 1;
        m->live = int64_t(m->ops.size() / 2) * l->out.h * l->out.w;
        l->mask = m;
      } else {
        ++plain;
      }
    }
  torch::manual_seed(3);
  nn::Net net(desc);
  torch::NoGradGuard ng;
  net->eval();
  const torch::Tensor x = torch::randn({2, in.shape.c, in.shape.h, in.shape.w});
  const torch::Tensor fused = net->forward(x);
  std::vector<std::string> sites;
  net->set_site_activation([&](const arch::Layer& site, const torch::Tensor& v) {
    sites.push_back(site.name);
    return torch::relu(v);
  });
  const torch::Tensor same = net->forward(x);  // unfused, the same function
  EXPECT_EQ(int64_t(sites.size()), plain);
  EXPECT_EQ(std::count(sites.begin(), sites.end(), "layer1.0.relu1"), 0);
  EXPECT_TRUE(torch::allclose(same, fused, 1e-4, 1e-5));
  net->set_site_activation([](const arch::Layer&, const torch::Tensor& v) { return v; });  // every plain site linear
  EXPECT_FALSE(torch::allclose(net->forward(x), fused, 1e-4, 1e-5));
  net->set_site_activation(nullptr);
  EXPECT_TRUE(torch::equal(net->forward(x), fused));
}
