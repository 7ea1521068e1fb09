// Pixel-level ReLU masks (SNL-style linearisation): a masked site computes
// relu(x) on its kept elements and x elsewhere in every execution path of
// nn::Net, and the masks travel through masks.pt to Python PyTorch.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <tuple>

#include "arch/describe.h"
#include "arch/spec.h"
#include "nn/net.h"
#include "nn/onednn.h"
#include "test_paths.h"
#include "site_reference.h"
#include "test_util.h"
#include "train/masks.h"
#include "train/weights.h"
#include "util/fs.h"

using namespace dr;

namespace {

enum class Kind { Elementwise, Channelwise };

// A random mask on every live ReLU site (each entry kept with probability
// `p`), except that, with `ends`, the first site keeps nothing and the second
// everything: the two special cases every execution path has.
train::MaskSet random_masks(const arch::Network& net, Kind kind, uint64_t seed, double p = 0.5, bool ends = true) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution coin(p);
  train::MaskSet out;
  int site = 0;
  for (const arch::Layer* l : net.layers()) {
    if (l->op != arch::Op::ReLU || !l->live) continue;
    train::SiteMask m;
    m.shape = kind == Kind::Channelwise ? std::vector<int64_t>{l->out.c}
                                        : std::vector<int64_t>{l->out.c, l->out.h, l->out.w};
    m.mask.channelwise = kind == Kind::Channelwise;
    m.mask.ops.resize(size_t(kind == Kind::Channelwise ? l->out.c : l->out.numel()));
    for (auto& k : m.mask.ops) k = ends && site == 0 ? 0 : ends && site == 1 ? 1 : coin(rng);
    out[l->name] = m;
    ++site;
  }
  return out;
}

arch::Network masked_desc(const std::string& spec, const std::string& data, Kind kind, uint64_t seed) {
  arch::Network desc = arch::build_network(spec, arch::dataset_input(data));
  train::apply_masks(desc, random_masks(desc, kind, seed));
  return desc;
}

using test::randomise_batch_norms;
using test::reference;
using test::rel_diff;

struct Path {
  std::string name;
  nn::ExecOptions exec;
};

// Every execution path of eval mode (see tests/torch/test_net_exec.cpp).
std::vector<Path> eval_paths() {
  nn::ExecOptions plain{false, false, false, false, false, 0};
  nn::ExecOptions cl = plain;
  cl.channels_last = true;
  nn::ExecOptions fused = cl;
  fused.fuse_inference = true;
  nn::ExecOptions mk = fused;
  mk.mkldnn_inference = true;
  nn::ExecOptions program = mk;
  program.onednn_program = true;
  nn::ExecOptions wino = program;
  wino.winograd = true;
  nn::ExecOptions chunked = wino;
  chunked.inference_chunk_bytes = 1;  // one image per chunk
  return {{"eval NCHW", plain},          {"eval channels-last", cl}, {"fused LibTorch", fused},
          {"mkldnn tensors", mk},        {"oneDNN program", program}, {"oneDNN program, Winograd", wino},
          {"oneDNN program, chunked", chunked}};
}

const std::vector<std::pair<std::string, std::string>> kSpecs = {
    {"resnet18:alpha=0.25", "fashion-mnist"},
    {"resnet18:cull=S1:thin:alpha=0.25", "cifar10"},
    {"mobilenetv2:alpha=0.25", "cifar10"},
    {"resnet20:alpha=0.5", "cifar10"},
};

}  // namespace

TEST(Masks, EveryEvalPathComputesTheMaskedReference) {
  for (const auto& [spec, data] : kSpecs)
    for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
      const std::string what = spec + (kind == Kind::Channelwise ? " channel-wise" : " element-wise");
      torch::manual_seed(1);
      nn::Net net(masked_desc(spec, data, kind, 11));
      randomise_batch_norms(net);
      const auto& in = net->desc().input;
      const auto x = torch::randn({3, in.c, in.h, in.w});
      net->eval();
      torch::NoGradGuard ng;
      const auto want = reference(net, x, false);
      for (const auto& path : eval_paths()) {
        net->set_exec_options(path.exec);
        EXPECT_LT(rel_diff(net->forward(x), want), 1e-4) << what << ", " << path.name;
      }
    }
}

TEST(Masks, TrainingForwardAndGradientsFollowTheMaskedReference) {
  for (const auto& [spec, data] : kSpecs)
    for (Kind kind : {Kind::Elementwise, Kind::Channelwise})
      for (bool cl : {true, false}) {
        const std::string what = spec + (kind == Kind::Channelwise ? " channel-wise" : " element-wise") +
                                 (cl ? " channels-last" : " NCHW");
        torch::manual_seed(2);
        nn::Net net(masked_desc(spec, data, kind, 12));
        nn::ExecOptions o;
        o.channels_last = cl;
        net->set_exec_options(o);
        net->train();
        const auto& in = net->desc().input;
        const auto x = torch::randn({4, in.c, in.h, in.w});
        const auto r = torch::randn({4, net->desc().classes});
        auto xa = x.clone().requires_grad_(), xb = x.clone().requires_grad_();
        const auto got = net->forward(xa), want = reference(net, xb, true);
        EXPECT_LT(rel_diff(got, want), 1e-4) << what;
        (got * r).sum().backward();
        (want * r).sum().backward();
        EXPECT_LT(rel_diff(xa.grad(), xb.grad()), 1e-4) << what << ": input gradient";
      }
}

// Float64 (and any device but the CPU) takes the torch::where path.
TEST(Masks, Float64TakesTheTextbookPath) {
  for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
    torch::manual_seed(3);
    nn::Net net(masked_desc("resnet18:alpha=0.25", "fashion-mnist", kind, 14));
    net->to(torch::kFloat64);
    net->train();
    const auto x = torch::randn({2, 1, 28, 28}, torch::kFloat64);
    auto xa = x.clone().requires_grad_(), xb = x.clone().requires_grad_();
    const auto got = net->forward(xa), want = reference(net, xb, true);
    EXPECT_LT(rel_diff(got, want), 1e-12);
    got.sum().backward();
    want.sum().backward();
    EXPECT_LT(rel_diff(xa.grad(), xb.grad()), 1e-12);
  }
}

TEST(Masks, OneDnnProgramStillCoversTheConvolutionalPart) {
  if (!nn::onednn::available()) GTEST_SKIP() << "built without oneDNN headers (libdnnl-dev)";
  for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
    const auto desc = masked_desc("resnet18:alpha=0.25", "fashion-mnist", kind, 3);
    auto p = nn::onednn::compile(desc, true);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->covered_blocks(), static_cast<int>(desc.blocks.size()) - 1);  // all but the FC head
  }
}

TEST(Masks, HookCountEqualsTheStaticLiveCount) {
  for (const auto& [spec, data] : kSpecs)
    for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
      torch::manual_seed(4);
      nn::Net net(masked_desc(spec, data, kind, 13));
      randomise_batch_norms(net);
      std::map<std::string, nn::MaskedReLUImpl*> masked;
      for (const auto& m : net->named_modules("", false))
        if (auto* mr = m.value()->as<nn::MaskedReLUImpl>()) masked[m.key()] = mr;
      const int64_t batch = 5;
      int64_t seen = 0, calls = 0, negative = 0;
      net->set_relu_observer([&](const std::string& name, const torch::Tensor& t) {
        ++calls;
        auto it = masked.find(name);
        if (it == masked.end()) {
          seen += t.numel();
          return;
        }
        const torch::Tensor keep = it->second->keep();
        const torch::Tensor k = keep.dim() == 1 ? keep.view({1, -1, 1, 1}) : keep.unsqueeze(0);
        seen += k.expand_as(t).sum().item<int64_t>();
        // The masked output: a kept element is never negative, a masked-out one may be.
        EXPECT_FALSE((t.lt(0) & k).any().item<bool>()) << name;
        negative += t.lt(0).sum().item<int64_t>();
      });
      const auto& in = net->desc().input;
      for (bool training : {false, true}) {
        seen = calls = 0;
        net->train(training);
        torch::NoGradGuard ng;
        net->forward(torch::randn({batch, in.c, in.h, in.w}));
        EXPECT_EQ(seen / batch, net->desc().totals().relus) << spec << (training ? " training" : " eval");
        int64_t sites = 0;
        for (const auto* l : net->desc().layers()) sites += l->relus() > 0;
        EXPECT_EQ(calls, sites) << spec << ": one call per site that keeps something";
        EXPECT_GT(negative, 0) << spec << ": the observer sees masked outputs, not ReLU outputs";
      }
      net->set_relu_observer(nullptr);
    }
}

TEST(Masks, SiteModulesFollowWhatTheMaskKeeps) {
  const auto in = arch::dataset_input("cifar10");
  arch::Network desc = arch::build_network("resnet18:cull=S1:thin:alpha=0.25", in);
  const train::MaskSet masks = random_masks(desc, Kind::Elementwise, 5);
  train::apply_masks(desc, masks);
  nn::Net net(desc), plain = nn::build("resnet18:cull=S1:thin:alpha=0.25", in);
  std::map<std::string, std::shared_ptr<torch::nn::Module>> modules;
  for (const auto& m : net->named_modules("", false)) modules[m.key()] = m.value();
  int empty = 0, full = 0, partial = 0;
  for (const auto& [name, m] : masks) {
    const int64_t kept = std::count(m.mask.ops.begin(), m.mask.ops.end(), uint8_t(1));
    if (kept == 0) {
      EXPECT_EQ(modules.count(name), 0u) << name << ": a site that keeps nothing is no module";
      ++empty;
    } else if (kept == int64_t(m.mask.ops.size())) {
      ASSERT_EQ(modules.count(name), 1u) << name;
      EXPECT_TRUE(modules[name]->as<torch::nn::ReLUImpl>()) << name << ": a site that keeps everything is a ReLU";
      ++full;
    } else {
      ASSERT_EQ(modules.count(name), 1u) << name;
      EXPECT_TRUE(modules[name]->as<nn::MaskedReLUImpl>()) << name;
      ++partial;
    }
  }
  EXPECT_EQ(empty, 1);
  EXPECT_EQ(full, 1);
  EXPECT_GT(partial, 0);
  // The masks are no state: the same parameter and buffer names as unmasked.
  std::vector<std::string> a, b;
  for (const auto& kv : train::state_dict(net)) a.push_back(kv.first);
  for (const auto& kv : train::state_dict(plain)) b.push_back(kv.first);
  EXPECT_EQ(a, b);
}

TEST(Masks, ChannelwiseMasksFitAnyInputSizeElementwiseOnesRefuseIt) {
  torch::manual_seed(6);
  const auto x = torch::randn({2, 1, 36, 36});  // described for 28x28
  nn::Net cw(masked_desc("resnet18:alpha=0.25", "fashion-mnist", Kind::Channelwise, 6));
  cw->eval();
  torch::NoGradGuard ng;
  EXPECT_LT(rel_diff(cw->forward(x), reference(cw, x, false)), 1e-4);
  nn::Net ew(masked_desc("resnet18:alpha=0.25", "fashion-mnist", Kind::Elementwise, 6));
  ew->eval();
  try {
    ew->forward(x);
    ADD_FAILURE() << "an element-wise mask accepted another input size";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(test::contains(e.what(), "element-wise mask is for")) << e.what();
  }
}

TEST(Masks, InconsistentDescriptionMaskIsRefused) {
  arch::Network desc = arch::build_network("resnet20:alpha=0.5", arch::dataset_input("cifar10"));
  train::apply_masks(desc, random_masks(desc, Kind::Elementwise, 7));
  for (arch::Layer* l : desc.mutable_layers())
    if (l->mask && l->mask->live > 0) {
      auto m = std::make_shared<arch::ReluMask>(*l->mask);
      m->live += 1;  // no longer what its entries keep
      l->mask = m;
      try {
        nn::Net net(desc);
        ADD_FAILURE() << "accepted";
      } catch (const std::invalid_argument& e) {
        EXPECT_TRUE(test::contains(e.what(), l->name)) << e.what();
      }
      break;
    }
}

TEST(Masks, SurviveSaveAndLoad) {
  const test::ScratchDir dir("masks");
  for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
    const arch::Network desc = masked_desc("resnet18:cull=S1:thin:alpha=0.25", "cifar10", kind, 8);
    train::save_masks(dir / "masks.pt", desc);
    const train::MaskSet loaded = train::load_masks(dir / "masks.pt");
    const train::MaskSet saved = train::masks_of(desc);
    ASSERT_EQ(loaded.size(), saved.size());
    for (const auto& [name, m] : saved) {
      ASSERT_TRUE(loaded.count(name)) << name;
      EXPECT_EQ(loaded.at(name).mask.ops, m.mask.ops) << name;
      EXPECT_EQ(loaded.at(name).shape, m.shape) << name;
      EXPECT_EQ(loaded.at(name).mask.channelwise, m.mask.channelwise) << name;
    }
    arch::Network again = arch::build_network("resnet18:cull=S1:thin:alpha=0.25", arch::dataset_input("cifar10"));
    train::apply_masks(again, loaded);
    EXPECT_EQ(again.totals().relus, desc.totals().relus);
    for (size_t i = 0; i < desc.layers().size(); ++i)
      if (desc.layers()[i]->mask) {
        EXPECT_EQ(again.layers()[i]->relus(), desc.layers()[i]->relus());
      }
  }
}

// masks.pt loads in Python's torch.load, and python/deepreduce_model.py
// rebuilds the masked network with the same outputs.
TEST(Masks, PythonPyTorchLoadsThemAndComputesTheSame) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch";
  const test::ScratchDir dir("masks-py");
  for (Kind kind : {Kind::Elementwise, Kind::Channelwise}) {
    torch::manual_seed(9);
    const std::string spec = "resnet18:cull=S1:thin:alpha=0.25";
    nn::Net net(masked_desc(spec, "cifar10", kind, 9));
    randomise_batch_norms(net);
    const torch::Tensor x = torch::randn({2, 3, 32, 32});
    const auto r = test::run_python_twin(
        dir.path, net, spec, arch::dataset_input("cifar10"), x,
        "masks = torch.load(d + '/masks.pt')\n"
        "assert isinstance(masks, dict) and all(t.dtype == torch.uint8 for t in masks.values())\n"
        "print(len(masks), sum(int(t.sum()) for t in masks.values()))\n");
    ASSERT_EQ(r.rc, 0) << r.out;
    std::istringstream out(r.out);
    size_t sites = 0;
    int64_t ones = 0;
    out >> sites >> ones;
    const auto saved = train::masks_of(net->desc());
    int64_t want_ones = 0;
    for (const auto& [name, m] : saved) want_ones += std::count(m.mask.ops.begin(), m.mask.ops.end(), uint8_t(1));
    EXPECT_EQ(sites, saved.size());
    EXPECT_EQ(ones, want_ones);
    test::expect_twin_logits(out, net, x, r.out);
  }
}

namespace {

void write_dict(const std::string& path, const std::map<std::string, torch::Tensor>& items) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, v] : items) d.insert(k, v);
  const auto bytes = torch::pickle_save(c10::IValue(d));
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

template <class F>
std::string error_of(F&& f) {
  return dr::test::message_of<std::runtime_error>(f);
}

}  // namespace

TEST(Masks, BadMaskFilesAreRefusedWithClearErrors) {
  const test::ScratchDir dir("masks-bad");
  const std::string spec = "resnet18:cull=S1:thin:alpha=0.25";
  const auto net = [&] { return arch::build_network(spec, arch::dataset_input("cifar10")); };
  const std::string site = "layer2.0.relu1";  // 32x16x16 (S1 culled, relu2 thinned)
  const auto u8 = [](std::vector<int64_t> shape) { return torch::ones(shape, torch::kUInt8); };
  auto apply_file = [&](const std::map<std::string, torch::Tensor>& items) {
    write_dict(dir / "m.pt", items);
    return error_of([&] {
      arch::Network n = net();
      train::apply_masks(n, train::load_masks(dir / "m.pt"));
    });
  };
  std::string e = apply_file({{site, u8({32, 16, 15})}});
  EXPECT_TRUE(test::contains(e, site) && test::contains(e, "[32, 16, 15]") && test::contains(e, "32x16x16")) << e;
  e = apply_file({{site, u8({16})}});
  EXPECT_TRUE(test::contains(e, "[16]") && test::contains(e, "[32] channel-wise")) << e;
  e = apply_file({{site, u8({32, 16, 16}) * 3}});  // 2 is a polynomial element (arch::SiteOp::Poly)
  EXPECT_TRUE(test::contains(e, dir / "m.pt") && test::contains(e, site) && test::contains(e, "value 3")) << e;
  e = apply_file({{"layer9.0.relu1", u8({32})}});
  EXPECT_TRUE(test::contains(e, "'layer9.0.relu1' is not a ReLU site")) << e;
  e = apply_file({{"layer2.0.conv1", u8({32})}});
  EXPECT_TRUE(test::contains(e, "'layer2.0.conv1' is not a ReLU site")) << e;
  e = apply_file({{"layer2.0.relu2", u8({32})}});
  EXPECT_TRUE(test::contains(e, "'layer2.0.relu2' was removed by the spec")) << e;
  e = apply_file({{site, torch::ones({32}, torch::kFloat)}});
  EXPECT_TRUE(test::contains(e, site) && test::contains(e, "dtype Float") && test::contains(e, "uint8")) << e;
  e = apply_file({{site, u8({32, 256})}});
  EXPECT_TRUE(test::contains(e, "[32, 256]") && test::contains(e, "[C, H, W]")) << e;
  // A good file cut short, and something else entirely.
  arch::Network good = net();
  train::apply_masks(good, random_masks(good, Kind::Elementwise, 10));
  train::save_masks(dir / "good.pt", good);
  const std::string bytes = util::read_file(dir / "good.pt");
  std::ofstream(dir / "cut.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  e = error_of([&] { train::load_masks(dir / "cut.pt"); });
  EXPECT_TRUE(test::contains(e, dir / "cut.pt") && test::contains(e, "is not a deepreduce masks.pt")) << e;
  write_dict(dir / "w.pt", {});
  EXPECT_TRUE(train::load_masks(dir / "w.pt").empty());
  e = error_of([&] { train::load_masks(dir / "missing.pt"); });
  EXPECT_TRUE(test::contains(e, "does not exist")) << e;
  // Nothing changes on a refused set: the good site stays unmasked.
  arch::Network n = net();
  train::MaskSet mixed = train::load_masks(dir / "good.pt");
  mixed["layer9.0.relu1"] = mixed.begin()->second;
  EXPECT_THROW(train::apply_masks(n, mixed), std::runtime_error);
  for (const auto* l : n.layers()) EXPECT_FALSE(l->mask) << l->name;
}

TEST(Masks, KeepLargestMeetsTheBudgetExactly) {
  const arch::Network base = arch::build_network("resnet20:alpha=0.5", arch::dataset_input("cifar10"));
  torch::manual_seed(11);
  std::map<std::string, torch::Tensor> scores;
  int64_t total = 0;
  for (const auto* l : base.layers())
    if (l->op == arch::Op::ReLU && l->live) {
      // Coarse values: many ties across and within sites.
      scores[l->name] = torch::randint(0, 50, {l->out.c, l->out.h, l->out.w}).to(torch::kFloat);
      total += l->out.numel();
    }
  for (int64_t budget : {int64_t(0), int64_t(1), int64_t(777), int64_t(12345), total - 1, total, total + 5}) {
    const train::MaskSet m = train::keep_largest(base, scores, budget);
    arch::Network net = base;
    train::apply_masks(net, m);
    EXPECT_EQ(net.totals().relus, std::min(budget, total)) << budget;
    const train::MaskSet again = train::keep_largest(base, scores, budget);
    for (const auto& [name, sm] : m) EXPECT_EQ(again.at(name).mask.ops, sm.mask.ops) << "deterministic";
    // Every kept score is at least every dropped one.
    float min_kept = INFINITY, max_dropped = -INFINITY;
    for (const auto& [name, sm] : m) {
      const float* s = scores.at(name).data_ptr<float>();
      for (size_t i = 0; i < sm.mask.ops.size(); ++i) {
        if (sm.mask.ops[i])
          min_kept = std::min(min_kept, s[i]);
        else
          max_dropped = std::max(max_dropped, s[i]);
      }
    }
    if (budget > 0 && budget < total) {
      EXPECT_GE(min_kept, max_dropped) << budget;
    }
  }
  // Ties: the earlier site in forward order, then the lower index.
  std::map<std::string, torch::Tensor> flat;
  for (const auto& [name, s] : scores) flat[name] = torch::zeros_like(s);
  const train::MaskSet t = train::keep_largest(base, flat, 10);
  const std::string first = "stem.relu";
  ASSERT_TRUE(t.count(first));
  for (size_t i = 0; i < t.at(first).mask.ops.size(); ++i) EXPECT_EQ(t.at(first).mask.ops[i], i < 10) << i;
  // Refused: a score per channel at one site only, a shape of neither kind, NaN, a negative budget, an unknown site.
  auto bad = scores;
  bad[first] = torch::zeros({8});
  EXPECT_TRUE(test::contains(error_of([&] { train::keep_largest(base, bad, 5); }),
                             "per channel at some sites and per element at others")) << first;
  bad[first] = torch::zeros({3, 2});
  EXPECT_TRUE(test::contains(error_of([&] { train::keep_largest(base, bad, 5); }), "one per element")) << first;
  bad = scores;
  bad[first] = scores[first].clone();
  bad[first][0][0][0] = NAN;
  EXPECT_TRUE(test::contains(error_of([&] { train::keep_largest(base, bad, 5); }), "NaN"));
  EXPECT_TRUE(test::contains(error_of([&] { train::keep_largest(base, scores, -1); }), "negative"));
  bad = scores;
  bad["nope"] = torch::zeros({1});
  EXPECT_TRUE(test::contains(error_of([&] { train::keep_largest(base, bad, 5); }), "'nope' is not a ReLU site"));
}

namespace {

// One network of the timing comparison, with its optimiser.
struct Timed {
  std::string name;
  nn::Net net;
  std::unique_ptr<torch::optim::SGD> opt;
  std::vector<std::vector<double>> infer_ms;  // per inference path, per round
  std::vector<double> train_ms;
};

std::vector<Timed> timing_variants(const std::string& spec, const std::string& data) {
  const std::vector<std::tuple<std::string, std::string, Kind, double>> v = {
      {"unmasked", spec, Kind::Elementwise, 1.0},
      {"element-wise 50%", spec, Kind::Elementwise, 0.5},
      {"channel-wise 50%", spec, Kind::Channelwise, 0.5},
      {"all masked out", spec, Kind::Elementwise, 0.0},
      {"all culled (spec)", spec + ":cull=S1,S2,S3,S4", Kind::Elementwise, 1.0},
  };
  std::vector<Timed> out;
  for (const auto& [name, s, kind, p] : v) {
    arch::Network desc = arch::build_network(s, arch::dataset_input(data));
    if (p < 1) train::apply_masks(desc, random_masks(desc, kind, 1, p, false));
    torch::manual_seed(0);
    Timed t{name, nn::Net(desc), nullptr, {}, {}};
    t.opt = std::make_unique<torch::optim::SGD>(
        t.net->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(5e-4));
    out.push_back(std::move(t));
  }
  return out;
}

double ms_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

// Timings for docs/performance.md ("Masked ReLU sites"); not a pass/fail
// test. Run: test_torch --gtest_also_run_disabled_tests --gtest_filter='MaskTiming.*'
TEST(MaskTiming, DISABLED_ResNet18QuarterOnFashionMnist) {
  const std::string spec = "resnet18:alpha=0.25", data = "fashion-mnist";
  const int64_t batch = 128;
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);  // as bench/run.sh: both cores
  std::vector<Timed> variants = timing_variants(spec, data);
  const auto& in = variants[0].net->desc().input;
  const auto x = torch::randn({batch, in.c, in.h, in.w});
  const auto y = torch::randint(10, {batch}, torch::kInt64);
  // Inference paths: the default (oneDNN program), LibTorch's oneDNN tensors, the dense fused path.
  std::vector<nn::ExecOptions> paths(3);
  paths[1].onednn_program = false;
  paths[2].mkldnn_inference = false;
  auto infer = [&](Timed& v, const nn::ExecOptions& o) {
    v.net->set_exec_options(o);
    v.net->eval();
    torch::NoGradGuard ng;
    v.net->forward(x);
  };
  auto train_step = [&](Timed& v) {
    v.net->train();
    v.opt->zero_grad();
    torch::nn::functional::cross_entropy(v.net->forward(x), y).backward();
    v.opt->step();
  };
  for (auto& v : variants) {  // warm-up
    for (const auto& o : paths) infer(v, o);
    train_step(v), train_step(v);
    v.infer_ms.resize(paths.size());
  }
  for (int round = 0; round < 7; ++round)
    for (auto& v : variants) {  // alternating: a busy neighbour hits every variant alike
      for (size_t p = 0; p < paths.size(); ++p) v.infer_ms[p].push_back(ms_of([&] {
          for (int k = 0; k < 5; ++k) infer(v, paths[p]);
        }) / 5);
      v.train_ms.push_back(ms_of([&] { train_step(v); }));
    }
  std::printf("%s on %s, batch %lld, %d threads: median of 7 rounds, ms per batch\n", spec.c_str(), data.c_str(),
              static_cast<long long>(batch), torch::get_num_threads());
  std::printf("%-18s %10s %10s %10s %10s %10s\n", "variant", "program", "mkldnn", "dense", "train", "ReLUs");
  for (const auto& v : variants)
    std::printf("%-18s %10.2f %10.2f %10.2f %10.2f %10lld\n", v.name.c_str(), median(v.infer_ms[0]),
                median(v.infer_ms[1]), median(v.infer_ms[2]), median(v.train_ms),
                static_cast<long long>(v.net->desc().totals().relus));
  torch::set_num_threads(threads);
}

// One site alone (layer1.0.relu1, 16x28x28, half kept, batch 128): a plain
// ReLU against the masked one, forward without grad and backward.
TEST(MaskTiming, DISABLED_OneSite) {
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  nn::Net keep_malloc_tuned(arch::build_network("resnet6", arch::dataset_input("cifar10")));  // as in training
  arch::Network desc = arch::build_network("resnet18:alpha=0.25", arch::dataset_input("fashion-mnist"));
  train::apply_masks(desc, random_masks(desc, Kind::Elementwise, 1, 0.5, false));
  const arch::Layer* site = nullptr;
  for (const auto* l : desc.layers())
    if (l->name == "layer1.0.relu1") site = l;
  ASSERT_TRUE(site);
  nn::MaskedReLU masked(*site);
  torch::nn::ReLU relu(torch::nn::ReLUOptions().inplace(true));
  const auto w = torch::ones({1}, torch::requires_grad());
  for (bool cl : {true, false}) {
    const auto x0 = torch::randn({128, 16, 28, 28}).contiguous(cl ? torch::MemoryFormat::ChannelsLast
                                                                   : torch::MemoryFormat::Contiguous);
    for (int k = 0; k < 2; ++k) {
      auto site_forward = [&](torch::Tensor x) { return k ? masked->forward(x) : relu->forward(x); };
      std::vector<double> fwd, bwd;
      for (int i = 0; i < 31; ++i) {
        auto x = x0.clone();
        auto t0 = std::chrono::steady_clock::now();
        {
          torch::NoGradGuard ng;
          site_forward(x);
        }
        fwd.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        auto y = site_forward(x0 * w);  // an input that requires grad
        const auto g = torch::ones_like(y);
        t0 = std::chrono::steady_clock::now();
        torch::autograd::grad({y}, {w}, {g});  // the site's backward and x0 * w's
        bwd.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf("%s %-6s forward (no grad) %5.0f us, backward (with x0 * w's) %5.0f us\n", cl ? "NHWC" : "NCHW",
                  k ? "masked" : "ReLU", median(fwd), median(bwd));
    }
  }
  torch::set_num_threads(threads);
}

// A channel-wise search's scores ([C] per site): whole channels, largest
// first, each that still fits; channel-wise masks with at most the budget's ReLUs.
TEST(Masks, KeepLargestPerChannelKeepsWholeChannelsWithinTheBudget) {
  const arch::Network base = arch::build_network("resnet20:alpha=0.5", arch::dataset_input("cifar10"));
  torch::manual_seed(12);
  std::map<std::string, torch::Tensor> scores;
  int64_t total = 0;
  for (const auto* l : base.layers())
    if (l->op == arch::Op::ReLU && l->live) {
      scores[l->name] = torch::rand({l->out.c});
      total += l->out.numel();
    }
  for (const arch::SiteOp dropped : {arch::SiteOp::Identity, arch::SiteOp::Poly})
    for (int64_t budget : {int64_t(0), int64_t(1000), int64_t(20000), total}) {
      const train::MaskSet m = train::keep_largest(base, scores, budget, dropped);
      arch::Network net = base;
      train::apply_masks(net, m);
      EXPECT_LE(net.totals().relus, budget);
      EXPECT_EQ(net.totals().relus + net.totals().polys, dropped == arch::SiteOp::Poly ? total : net.totals().relus);
      int64_t smallest_left = total;  // the smallest channel dropped: it did not fit
      for (const auto* l : net.layers())
        if (l->op == arch::Op::ReLU && l->live) {
          ASSERT_TRUE(l->mask && l->mask->channelwise) << l->name;
          EXPECT_EQ(l->mask->ops.size(), size_t(l->out.c));
          if (std::count(l->mask->ops.begin(), l->mask->ops.end(), uint8_t(dropped)))
            smallest_left = std::min(smallest_left, l->out.h * l->out.w);
        }
      if (net.totals().relus < total) {
        EXPECT_GT(net.totals().relus + smallest_left, budget) << budget;  // the budget is filled as far as channels go
      }
    }
  // The largest score goes first: with room for one 32x32 channel only, the stem's channel 3, made the best.
  scores["stem.relu"][3] = 2.0f;
  const train::MaskSet one = train::keep_largest(base, scores, 32 * 32);
  for (const auto& [name, m] : one)
    for (size_t c = 0; c < m.mask.ops.size(); ++c)
      EXPECT_EQ(m.mask.ops[c] == uint8_t(arch::SiteOp::Relu), name == "stem.relu" && c == 3) << name << " " << c;
}
