// Polynomial elements of a ReLU site (arch::SiteOp::Poly, nn/poly_site.h):
// per element a ReLU, an identity or a_c*x^2 + b_c*x + c_c with trained
// per-channel coefficients. Every execution path of nn::Net computes what a
// textbook forward from the description computes; the coefficients are
// parameters ("<site>.poly") that train, save and load; masks.pt carries the
// op codes; Python PyTorch rebuilds the same network.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "arch/describe.h"
#include "arch/relu_site.h"
#include "arch/spec.h"
#include "nn/net.h"
#include "test_paths.h"
#include "site_reference.h"
#include "test_util.h"
#include "train/masks.h"
#include "train/weights.h"

using namespace dr;

namespace {

// Each live site's entries drawn from {identity, ReLU, polynomial}; the first
// site all polynomial, the second ReLUs and polynomials only.
train::MaskSet mixed_masks(const arch::Network& net, bool channelwise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> op(0, 2), relu_or_poly(1, 2);
  train::MaskSet out;
  int site = 0;
  for (const arch::Layer* l : net.layers()) {
    if (l->op != arch::Op::ReLU || !l->live) continue;
    train::SiteMask m;
    m.shape = channelwise ? std::vector<int64_t>{l->out.c} : std::vector<int64_t>{l->out.c, l->out.h, l->out.w};
    m.mask.channelwise = channelwise;
    m.mask.ops.resize(size_t(channelwise ? l->out.c : l->out.numel()));
    for (auto& k : m.mask.ops) k = uint8_t(site == 0 ? 2 : site == 1 ? relu_or_poly(rng) : op(rng));
    out[l->name] = m;
    ++site;
  }
  return out;
}

arch::Network mixed_desc(const std::string& spec, bool channelwise, uint64_t seed) {
  arch::Network desc = arch::build_network(spec, arch::dataset_input("cifar10"));
  train::apply_masks(desc, mixed_masks(desc, channelwise, seed));
  return desc;
}

// Random coefficients and BatchNorm statistics, so that every term matters.
void randomise(nn::Net& net) {
  test::randomise_batch_norms(net);
  torch::NoGradGuard ng;
  for (auto& item : net->named_parameters())
    if (item.key().size() > 5 && item.key().substr(item.key().size() - 5) == ".poly") item.value().normal_(0.3, 0.2);
}

using test::rel_diff;

const char* kSpec = "resnet18:cull=S1:thin:alpha=0.25";

}  // namespace

TEST(PolySites, CountsSeparateReluAndPolynomialElements) {
  const arch::Network desc = mixed_desc(kSpec, false, 3);
  int64_t relus = 0, polys = 0, coefficient_params = 0;
  for (const arch::Layer* l : desc.layers()) {
    if (l->op != arch::Op::ReLU || !l->live) continue;
    relus += std::count(l->mask->ops.begin(), l->mask->ops.end(), uint8_t(1));
    polys += std::count(l->mask->ops.begin(), l->mask->ops.end(), uint8_t(2));
    if (arch::has_polynomials(*l)) coefficient_params += 3 * l->out.c;
  }
  const arch::Totals t = desc.totals();
  EXPECT_EQ(t.relus, relus);
  EXPECT_EQ(t.polys, polys);
  EXPECT_GT(polys, 0);
  const arch::Totals plain = arch::build_network(kSpec, arch::dataset_input("cifar10")).totals();
  EXPECT_EQ(t.params, plain.params + coefficient_params);
  EXPECT_EQ(plain.polys, 0);
  const auto j = arch::network_json(desc, false);
  EXPECT_EQ(j["polys"], polys);
  EXPECT_EQ(j["relus"], relus);
}

TEST(PolySites, EveryExecutionPathComputesTheDescription) {
  for (bool channelwise : {false, true}) {
    torch::manual_seed(4);
    nn::Net net(mixed_desc(kSpec, channelwise, 7));
    randomise(net);
    const torch::Tensor x = torch::randn({3, 3, 32, 32});
    net->eval();
    torch::Tensor want;
    {
      torch::NoGradGuard ng;
      want = test::reference(net, x, false);
      const torch::Tensor fused = net->forward(x);  // eval, no grad: the fused plan (oneDNN where it can)
      EXPECT_LT(rel_diff(fused, want), 1e-4) << (channelwise ? "channel-wise" : "element-wise");
    }
    const torch::Tensor eager = net->forward(x);  // grad enabled: the eager modules
    EXPECT_LT(rel_diff(eager.detach(), want), 1e-4) << (channelwise ? "channel-wise" : "element-wise");
  }
}

TEST(PolySites, CoefficientsAreParametersThatTrainSaveAndLoad) {
  torch::manual_seed(5);
  const arch::Network desc = mixed_desc(kSpec, false, 11);
  nn::Net net(desc);
  std::vector<std::string> poly_params;
  for (const auto& p : net->named_parameters())
    if (p.key().size() > 5 && p.key().substr(p.key().size() - 5) == ".poly") poly_params.push_back(p.key());
  int64_t sites = 0;
  for (const arch::Layer* l : desc.layers()) sites += arch::has_polynomials(*l);
  ASSERT_EQ(int64_t(poly_params.size()), sites);
  // A new site starts from the least-squares ReLU fit on N(0, 1).
  const torch::Tensor first = net->named_parameters()[poly_params[0]];
  EXPECT_NEAR(first[0][0].item<double>(), nn::kPolyInitA, 1e-7);
  EXPECT_NEAR(first[1][0].item<double>(), nn::kPolyInitB, 1e-7);
  // Gradients reach the coefficients.
  net->train();
  net->forward(torch::randn({4, 3, 32, 32})).pow(2).sum().backward();
  for (const auto& name : poly_params) {
    const torch::Tensor g = net->named_parameters()[name].grad();
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_GT(g.abs().sum().item<double>(), 0) << name;
  }
  // weights.pt carries them; a network of the same description loads them.
  const test::ScratchDir dir("poly-weights");
  randomise(net);
  train::save_weights(net, dir / "weights.pt");
  nn::Net again(desc);
  train::load_into(again, train::load_weights(dir / "weights.pt"), true, "weights");
  for (const auto& name : poly_params)
    EXPECT_TRUE(torch::equal(again->named_parameters()[name], net->named_parameters()[name])) << name;
}

TEST(PolySites, MasksFileCarriesTheOpsAndRefusesOthers) {
  const test::ScratchDir dir("poly-masks");
  const arch::Network desc = mixed_desc(kSpec, false, 2);
  train::save_masks(dir / "masks.pt", desc);
  const train::MaskSet loaded = train::load_masks(dir / "masks.pt");
  for (const auto& [name, m] : train::masks_of(desc)) EXPECT_EQ(loaded.at(name).mask.ops, m.mask.ops) << name;
  arch::Network again = arch::build_network(kSpec, arch::dataset_input("cifar10"));
  train::apply_masks(again, loaded);
  EXPECT_EQ(again.totals().polys, desc.totals().polys);
  EXPECT_EQ(again.totals().relus, desc.totals().relus);
  // 3 is no op.
  c10::Dict<std::string, at::Tensor> d;
  const arch::Layer* site = nullptr;
  for (const arch::Layer* l : desc.layers())
    if (l->op == arch::Op::ReLU && l->live && !site) site = l;
  d.insert(site->name, torch::full({site->out.c}, 3, torch::kUInt8));
  const auto bytes = torch::pickle_save(c10::IValue(d));
  std::ofstream(dir / "bad.pt", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  const std::string m = test::message_of<std::runtime_error>([&] { train::load_masks(dir / "bad.pt"); });
  EXPECT_TRUE(test::contains(m, "holds the value 3 (accepted: 0 identity, 1 ReLU, 2 polynomial)")) << m;
}

// python/deepreduce_model.py builds the same network from the layer list,
// masks.pt and weights.pt (coefficients included) and computes the same logits.
TEST(PolySites, PythonPyTorchComputesTheSame) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const test::ScratchDir dir("poly-py");
  torch::manual_seed(8);
  nn::Net net(mixed_desc(kSpec, false, 6));
  randomise(net);
  const torch::Tensor x = torch::randn({2, 3, 32, 32});
  const auto r = test::run_python_twin(dir.path, net, kSpec, arch::dataset_input("cifar10"), x);
  ASSERT_EQ(r.rc, 0) << r.out;
  std::istringstream out(r.out);
  test::expect_twin_logits(out, net, x, r.out);
}
