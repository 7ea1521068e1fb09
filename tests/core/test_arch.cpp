// The network description: ReLU counts of the appendix (docs/method.md section 3),
// FLOPs/params checked by hand, stage splits, and bad specs.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <memory>
#include <tuple>

#include "arch/builder.h"
#include "arch/spec.h"

using namespace dr::arch;

namespace {

int64_t relus(const std::string& spec, const std::string& dataset) {
  return build_network(spec, dataset_input(dataset)).totals().relus;
}

int64_t stage_relus(const Network& net, const std::string& stage) {
  for (const auto& s : net.stage_totals())
    if (s.name == stage) return s.totals.relus;
  ADD_FAILURE() << "no stage " << stage;
  return -1;
}

void expect_spec_error(const std::string& spec, const std::string& needle,
                       const std::string& dataset = "cifar100") {
  try {
    build_network(spec, dataset_input(dataset));
    ADD_FAILURE() << "spec '" << spec << "' was accepted";
  } catch (const SpecError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message for '" << spec << "': " << e.what() << "\n  should mention: " << needle;
  }
}

}  // namespace

// --- docs/method.md section 3: every count, through the ordinary spec mechanism ------

TEST(AppendixCounts, ResNet18) {
  EXPECT_EQ(relus("resnet18", "cifar100"), 557056);
  EXPECT_EQ(relus("resnet18:alpha=0.25", "cifar100"), 139264);
  EXPECT_EQ(relus("resnet18:rho=0.5", "cifar100"), 139264);
  const Network net = build_network("resnet18", dataset_input("cifar100"));
  EXPECT_EQ(stage_relus(net, "S1"), 327680);
  EXPECT_EQ(stage_relus(net, "S2"), 131072);
  EXPECT_EQ(stage_relus(net, "S3"), 65536);
  EXPECT_EQ(stage_relus(net, "S4"), 32768);
  EXPECT_EQ(build_network("resnet18", dataset_input("cifar100")).blocks[0].body[2].relus(), 65536);
}

TEST(AppendixCounts, ResNet10And6) {
  EXPECT_EQ(relus("resnet10", "cifar100"), 311296);
  EXPECT_EQ(relus("resnet10:alpha=0.25", "cifar100"), 77824);
  EXPECT_EQ(relus("resnet10:rho=0.5", "cifar100"), 77824);
  EXPECT_EQ(relus("resnet6", "cifar100"), 188416);
  EXPECT_EQ(relus("resnet6:alpha=0.25", "cifar100"), 47104);
  EXPECT_EQ(relus("resnet6:rho=0.5", "cifar100"), 47104);
}

TEST(AppendixCounts, Vgg16) {
  EXPECT_EQ(relus("vgg16:keep=S1", "cifar10"), 139264);
  EXPECT_EQ(relus("vgg16:keep=S2", "cifar10"), 73728);
  EXPECT_EQ(relus("vgg16:keep=S3", "cifar10"), 57344);
  EXPECT_EQ(relus("vgg16:keep=S4", "cifar10"), 32768);
  EXPECT_EQ(relus("vgg16:keep=S5", "cifar10"), 14336);
  EXPECT_EQ(relus("vgg16:cull=S4,S5", "cifar10"), 253952);
  EXPECT_EQ(relus("vgg16:keep=S2,S3", "cifar10"), 122880);
  EXPECT_EQ(relus("vgg16:keep=S2,S3:thin", "cifar10"), 73728);
  EXPECT_EQ(relus("vgg16:keep=S1,S2,S3:thin:alpha=0.5", "cifar10"), 69632);
  EXPECT_EQ(relus("vgg16:keep=S2,S3:thin=alternate:alpha=0.5", "cifar10"), 36864);
}

TEST(AppendixCounts, MobileNetV1) {
  const Network net = build_network("mobilenetv1", dataset_input("cifar100"));
  EXPECT_EQ(net.totals().relus, 411648);
  const int64_t stages[] = {131072, 114688, 57344, 94208, 14336};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(stage_relus(net, "S" + std::to_string(i + 1)), stages[i]);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(relus("mobilenetv1:keep=S" + std::to_string(i + 1), "cifar100"), stages[i]);
  EXPECT_EQ(relus("mobilenetv1:cull=S1", "cifar100"), 280576);
}

TEST(AppendixCounts, ResNet56) {
  EXPECT_EQ(relus("resnet56:keep=S1", "cifar100"), 311296);
  EXPECT_EQ(relus("resnet56:keep=S2", "cifar100"), 147456);
  EXPECT_EQ(relus("resnet56:keep=S3", "cifar100"), 73728);
  EXPECT_EQ(relus("resnet56", "cifar100"), 311296 + 147456 + 73728);
}

// --- FLOPs (MACs of conv/FC) and params, checked by hand -------------------

TEST(FlopsParams, ResNet18Cifar10) {
  // Known figure for the CIFAR ResNet18 (no conv bias, BN affine, FC with bias).
  const Totals t = build_network("resnet18", dataset_input("cifar10")).totals();
  EXPECT_EQ(t.params, 11173962);
  // Stem 3*64*9*1024; layer1: 4 convs 64*64*9*1024; layer2: 128*64*9*256 +
  // 3*128*128*9*256 + shortcut 128*64*256; likewise layer3/4; FC 512*10.
  const int64_t stem = 3LL * 64 * 9 * 1024;
  const int64_t l1 = 4LL * 64 * 64 * 9 * 1024;
  auto stage = [](int64_t cin, int64_t c, int64_t hw) {
    return c * cin * 9 * hw + 3 * c * c * 9 * hw + c * cin * hw;
  };
  const int64_t macs = stem + l1 + stage(64, 128, 256) + stage(128, 256, 64) + stage(256, 512, 16) + 512 * 10;
  EXPECT_EQ(t.flops, macs);
  EXPECT_EQ(t.flops, 555422720);  // the usual "0.56 GMACs"
}

TEST(FlopsParams, ResNet6ByHand) {
  // fashion-mnist 1x28x28, 10 classes.
  const Network net = build_network("resnet6", dataset_input("fashion-mnist"));
  // convs: stem 1->64 (28x28), layer1 64->64 (28), layer2 64->128 s2 (14) + 1x1
  // shortcut, layer3 128->256 (7) + sc, layer4 256->512 (4) + sc.
  const int64_t conv_params = 1 * 64 * 9 + 64 * 64 * 9 + (64 * 128 * 9 + 64 * 128) +
                              (128 * 256 * 9 + 128 * 256) + (256 * 512 * 9 + 256 * 512);
  const int64_t bn_params = 2 * (64 + 64 + 128 + 128 + 256 + 256 + 512 + 512);
  EXPECT_EQ(net.totals().params, conv_params + bn_params + 512 * 10 + 10);
  const int64_t macs = 1 * 64 * 9 * 784 + 64 * 64 * 9 * 784 + (64 * 128 * 9 + 64 * 128) * 196 +
                       (128 * 256 * 9 + 128 * 256) * 49 + (256 * 512 * 9 + 256 * 512) * 16 + 5120;
  EXPECT_EQ(net.totals().flops, macs);
  EXPECT_EQ(net.output(), (Shape{10, 1, 1}));
  EXPECT_EQ(net.totals().relus, 64 * 784 + 64 * 784 + 128 * 196 + 256 * 49 + 512 * 16);
}

TEST(FlopsParams, Vgg16Cifar10ByHand) {
  const Totals t = build_network("vgg16", dataset_input("cifar10")).totals();
  const int64_t cfg[][3] = {{64, 64, 0}, {128, 128, 0}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  int64_t cin = 3, hw = 1024, params = 0, macs = 0;
  for (auto& st : cfg) {
    for (int64_t c : st) {
      if (!c) continue;
      params += cin * c * 9 + 2 * c;
      macs += cin * c * 9 * hw;
      cin = c;
    }
    hw /= 4;
  }
  params += 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10;
  macs += 512 * 4096 + 4096 * 4096 + 4096 * 10;
  EXPECT_EQ(t.params, params);
  EXPECT_EQ(t.flops, macs);
}

TEST(FlopsParams, DepthwiseConv) {
  const Network net = build_network("mobilenetv1", dataset_input("cifar10"));
  const Layer* dw = nullptr;
  for (const auto* l : net.layers())
    if (l->name == "blocks.1.dw") dw = l;
  ASSERT_NE(dw, nullptr);
  EXPECT_EQ(dw->groups, 64);
  EXPECT_EQ(dw->params(), 64 * 9);
  EXPECT_EQ(dw->flops(), 64 * 9 * 16 * 16);
  EXPECT_EQ(dw->out, (Shape{64, 16, 16}));
}

// --- stage splits and names -------------------------------------------------

TEST(Stages, ResNetStemGoesWithS1) {
  const Network net = build_network("resnet18", dataset_input("cifar10"));
  EXPECT_EQ(net.stages, (std::vector<std::string>{"S1", "S2", "S3", "S4"}));
  for (const auto* l : net.layers()) {
    if (l->name.rfind("stem.", 0) == 0 || l->name.rfind("layer1.", 0) == 0) {
      EXPECT_EQ(l->stage, "S1");
    }
    if (l->name.rfind("layer3.", 0) == 0) {
      EXPECT_EQ(l->stage, "S3");
    }
    if (l->op == Op::Linear) {
      EXPECT_EQ(l->stage, "head");
    }
  }
  // culling S1 takes the stem ReLU with it
  EXPECT_EQ(relus("resnet18:cull=S1", "cifar100"), 557056 - 327680);
}

TEST(Stages, ReluNamesMatchModulePaths) {
  const Network net = build_network("resnet18", dataset_input("cifar10"));
  std::vector<std::string> names;
  for (const auto* l : net.layers())
    if (l->op == Op::ReLU) names.push_back(l->name);
  ASSERT_EQ(names.size(), 17u);
  EXPECT_EQ(names[0], "stem.relu");
  EXPECT_EQ(names[1], "layer1.0.relu1");
  EXPECT_EQ(names[2], "layer1.0.relu2");
  EXPECT_EQ(names[16], "layer4.1.relu2");
}

TEST(Stages, MobileNetStagesFollowResolution) {
  // V1: every layer of stage Sk is at 32 / 2^(k-1). V2: a block belongs to the
  // stage of its output resolution (its expand layer may sit one level up).
  for (const std::string fam : {"mobilenetv1", "mobilenetv2"}) {
    const Network net = build_network(fam, dataset_input("cifar100"));
    for (const auto& b : net.blocks) {
      if (b.stage == "head") continue;
      const int s = b.stage[1] - '0';
      EXPECT_EQ(b.body.back().out.h, 32 >> (s - 1)) << fam << " " << b.name;
      if (fam == "mobilenetv1") {
        for (const auto& l : b.body) EXPECT_EQ(l.out.h, 32 >> (s - 1)) << l.name;
      }
    }
  }
}

TEST(Stages, MobileNetV2VariantCount) {
  // The variant documented in docs/: torchvision settings, stride-1 stem.
  const Network net = build_network("mobilenetv2", dataset_input("cifar100"));
  // By hand, a block in the stage of its output resolution: S1 = stem 32x32x32
  // + block0 dw 32x32x32; S2 = block1 (96x32x32 expand + 96x16x16 dw) + block2
  // (2 x 144x16x16); S3..S5 likewise; S5 ends with the 1280x2x2 head conv.
  EXPECT_EQ(stage_relus(net, "S1"), 65536);
  EXPECT_EQ(stage_relus(net, "S2"), 196608);
  EXPECT_EQ(stage_relus(net, "S3"), 95232);
  EXPECT_EQ(stage_relus(net, "S4"), 101376);
  EXPECT_EQ(stage_relus(net, "S5"), 39680);
  EXPECT_EQ(net.totals().relus, 498432);
}

// --- reductions ---------------------------------------------------------------

TEST(Reduction, ThinningPolicies) {
  // relu2 drops the post-add ReLU of every block of the remaining stages.
  EXPECT_EQ(relus("resnet18:thin", "cifar100"), 65536 + 557056 / 2 - 65536 / 2);
  EXPECT_EQ(relus("resnet18:thin=relu1", "cifar100"), relus("resnet18:thin=relu2", "cifar100"));
  EXPECT_EQ(relus("resnet18:cull=S1:thin", "cifar100"), (131072 + 65536 + 32768) / 2);
  // MobileNetV1 depthwise thinning of S2..S5 (pointwise ReLUs stay).
  EXPECT_EQ(relus("mobilenetv1:cull=S1:thin=dw", "cifar100"), 65536 + 32768 + 49152 + 8192);
  EXPECT_GT(relus("mobilenetv1:cull=S1:thin=pw", "cifar100"), 0);
}

TEST(Reduction, BlocksKnob) {
  EXPECT_EQ(relus("resnet18:blocks=1,1,1,1", "cifar100"), relus("resnet10", "cifar100"));
  EXPECT_EQ(relus("resnet18:blocks=2,1,1,1", "cifar100"), 311296 + 131072);
  const Network net = build_network("resnet18:blocks=2,1,1,1", dataset_input("cifar100"));
  EXPECT_EQ(stage_relus(net, "S1"), 327680);
}

TEST(Reduction, LiveFlagsAndWeightsUnchanged) {
  const Network a = build_network("resnet18", dataset_input("cifar10"));
  const Network b = build_network("resnet18:cull=S1,S4:thin", dataset_input("cifar10"));
  EXPECT_EQ(a.totals().params, b.totals().params);
  EXPECT_EQ(a.totals().flops, b.totals().flops);
  EXPECT_EQ(a.layers().size(), b.layers().size());
}

// --- spec grammar ---------------------------------------------------------------

TEST(SpecGrammar, OrderDoesNotMatterAndCanonicalRoundTrips) {
  const ModelSpec a = parse_spec("resnet18:cull=S4,S1:thin:alpha=0.5:rho=0.5");
  const ModelSpec b = parse_spec("resnet18:rho=0.5:alpha=0.5:thin=relu2:cull=S1,S4");
  EXPECT_EQ(a.canonical(), b.canonical());
  EXPECT_EQ(a.canonical(), "resnet18:alpha=0.5:rho=0.5:cull=S1,S4:thin=relu2");
  EXPECT_EQ(parse_spec(a.canonical()).canonical(), a.canonical());
  EXPECT_EQ(parse_spec("resnet18").canonical(), "resnet18");
}

TEST(SpecGrammar, BadSpecs) {
  expect_spec_error("", "empty model spec");
  expect_spec_error("resnet19", "unknown model family 'resnet19'");
  expect_spec_error("resnet19", "resnet18");  // lists the accepted ones
  expect_spec_error("resnet18:foo=1", "unknown key 'foo'");
  expect_spec_error("resnet18:foo=1", "alpha, rho, blocks, cull, keep, thin");
  expect_spec_error("resnet18:cull=S5", "unknown stage 'S5'");
  expect_spec_error("resnet18:cull=S5", "S1, S2, S3, S4");
  expect_spec_error("resnet18:keep=", "needs stages");
  expect_spec_error("resnet18:thin=dw", "unknown thinning policy 'dw'");
  expect_spec_error("resnet18:thin=dw", "relu2, relu1");
  expect_spec_error("resnet6:thin", "thinning is not defined");
  expect_spec_error("resnet18:alpha=0", "alpha must be > 0");
  expect_spec_error("resnet18:alpha=-1", "alpha must be > 0");
  expect_spec_error("resnet18:alpha=abc", "is not a number");
  expect_spec_error("resnet18:alpha", "needs a value");
  expect_spec_error("resnet18:rho=0.3", "rho must be 1/k");
  expect_spec_error("resnet18:rho=2", "rho must be 1/k");
  expect_spec_error("resnet18:blocks=2,2", "blocks needs 4 numbers");
  expect_spec_error("resnet18:blocks=2,0,1,1", "positive integers");
  expect_spec_error("vgg16:blocks=1,1,1,1,1", "blocks= is accepted by the families with a block count per stage");
  expect_spec_error("vgg16:blocks=1,1,1,1,1", "resnet18");  // from the registry
  expect_spec_error("resnet18:foo=1", "(accepted: alpha, rho, blocks, cull, keep, thin)");
  expect_spec_error("resnet18:cull=S1:keep=S2", "not both");
  expect_spec_error("resnet18:alpha=0.5:alpha=0.5", "given twice");
  expect_spec_error("resnet18::thin", "empty part");
  expect_spec_error("resnet18:alpha=0.001", "with none");
  // spatial size below 1
  expect_spec_error("vgg16", "spatial size shrinks below 1", "fashion-mnist");
  expect_spec_error("vgg16:rho=0.5", "stage5.pool", "cifar10");
}

// A stage named twice in a list is refused like a key given twice (it was
// silently deduplicated, however many times it was repeated).
TEST(SpecGrammar, RepeatedStageInAListIsRefused) {
  expect_spec_error("resnet18:cull=S1,S1", "stage 'S1' given twice in cull");
  expect_spec_error("resnet18:keep=S2,S4,S2", "stage 'S2' given twice in keep");
  std::string many = "resnet18:cull=S1";
  for (int i = 0; i < 10000; ++i) many += ",S1";
  expect_spec_error(many, "stage 'S1' given twice in cull");
  EXPECT_EQ(parse_spec("resnet18:cull=S4,S1").canonical(), "resnet18:cull=S1,S4");  // order still free
}

TEST(SpecGrammar, InputsAndPresets) {
  EXPECT_EQ(dataset_input("tinyimagenet").shape, (Shape{3, 64, 64}));
  EXPECT_EQ(dataset_input("cifar100").classes, 100);
  EXPECT_EQ(parse_shape("1x28x28"), (Shape{1, 28, 28}));
  EXPECT_THROW(parse_shape("28x28"), SpecError);
  EXPECT_THROW(parse_shape("3x0x32"), SpecError);
  EXPECT_THROW(parse_shape("3x32x32x"), SpecError);
  EXPECT_THROW(dataset_input("imagenet"), SpecError);
  // Tiny ImageNet: 4x the ReLUs of 32x32.
  EXPECT_EQ(relus("resnet18", "tinyimagenet"), 4 * 557056);
}

TEST(SpecGrammar, EveryFamilyBuildsOnEveryPreset) {
  for (const auto& fam : families())
    for (const auto& ds : dataset_names()) {
      if (fam.name == "vgg16" && ds == "fashion-mnist") continue;  // 28 -> 0 after 5 pools
      const Network net = build_network(fam.name, dataset_input(ds));
      EXPECT_EQ(net.output().c, dataset_input(ds).classes) << fam.name << " " << ds;
      EXPECT_GT(net.totals().relus, 0);
    }
}

// --- limits: no count can overflow, absurd sizes are refused up front -----------
// The limits live in network.h (namespace limits); these are the inputs an
// outside campaign found to overflow silently or to allocate without bound.

namespace {

std::string spec_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const SpecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no SpecError";
  return "";
}

#define EXPECT_MENTIONS(msg, needle) \
  EXPECT_NE((msg).find(needle), std::string::npos) << (msg) << "\n  should mention: " << (needle)

// VGG16-BN by hand for an integer alpha: every conv, the 4096-wide FCs.
Totals vgg16_by_hand(int64_t alpha, int64_t side, int64_t classes) {
  const int64_t cfg[][3] = {{64, 64, 0}, {128, 128, 0}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  Totals t;
  int64_t cin = 3, hw = side * side;
  for (auto& st : cfg) {
    for (int64_t c0 : st) {
      if (!c0) continue;
      const int64_t c = c0 * alpha;
      t.params += cin * c * 9 + 2 * c;
      t.flops += cin * c * 9 * hw;
      t.relus += c * hw;
      cin = c;
    }
    hw /= 4;
  }
  const int64_t flat = cin * hw, hidden = 4096 * alpha;
  t.params += flat * hidden + hidden + hidden * hidden + hidden + hidden * classes + classes;
  t.flops += flat * hidden + hidden * hidden + hidden * classes;
  t.relus += 2 * hidden;
  return t;
}

}  // namespace

TEST(Limits, OverflowingAlphaIsRefusedNamingAlpha) {
  // Was: a negative parameter count (1e6), and "a layer of 64 channels with none" (1e17).
  expect_spec_error("resnet18:alpha=1e6", "alpha=1e+06 is too large");
  expect_spec_error("resnet18:alpha=1e6", "at most 1048576 channels per layer");
  expect_spec_error("resnet18:alpha=1e17", "alpha=1e+17 is too large");
  expect_spec_error("resnet18:alpha=1e300", "alpha=1e+300 is too large");
  expect_spec_error("vgg16:alpha=257", "a layer of 4096 channels 1052672 wide", "cifar10");
  // The largest alpha vgg16's classifier takes still builds, at the limit exactly.
  const Network net = build_network("vgg16:alpha=256", dataset_input("cifar10"));
  for (const auto* l : net.layers()) {
    if (l->name == "classifier.fc1") {
      EXPECT_EQ(l->out_ch, limits::kMaxChannels);
    }
  }
  // A spec made in code is checked like a parsed one.
  ModelSpec s = parse_spec("resnet18");
  s.alpha = std::numeric_limits<double>::infinity();
  EXPECT_MENTIONS(spec_error([&] { build_network(s, dataset_input("cifar10")); }), "alpha must be > 0");
}

TEST(Limits, HugeInputIsRefused) {
  // Was: wrong FLOPs and ReLU counts with exit 0.
  EXPECT_MENTIONS(spec_error([] { parse_shape("3x2000000000x2000000000"); }),
                  "input shape '3x2000000000x2000000000': height 2000000000 is too large (at most 16384)");
  EXPECT_MENTIONS(spec_error([] { parse_shape("3x32x99999999999999999999999"); }),
                  "width 99999999999999999999999 is too large");
  EXPECT_MENTIONS(spec_error([] { parse_shape("2000x32x32"); }), "channels 2000 is too large (at most 1024)");
  EXPECT_EQ(parse_shape("3x16384x16384"), (Shape{3, 16384, 16384}));
  // An InputSpec made in code (an architecture file, --input) is checked too.
  auto build = [](Shape s, int64_t classes) { build_network("resnet18", InputSpec{s, classes}); };
  EXPECT_MENTIONS(spec_error([&] { build({3, 2000000000, 2000000000}, 10); }), "height 2000000000 is too large");
  EXPECT_MENTIONS(spec_error([&] { build({3, 32, 32}, 99999999); }), "99999999 classes is too many");
  EXPECT_MENTIONS(spec_error([&] { build({-3, -32, 32}, 10); }), "need a positive shape");
  // Within the input limits, a count that does not fit is refused, naming it.
  const InputSpec big{{3, 16384, 16384}, 10};
  EXPECT_MENTIONS(spec_error([&] { build_network("resnet18:alpha=2000", big); }),
                  "layer 'layer1.0.conv1': FLOPs exceed the limit of 2^62");
  EXPECT_MENTIONS(spec_error([&] { build_network("vgg16:alpha=256", big); }), "total FLOPs exceed the limit of 2^62");
}

TEST(Limits, TinyRhoIsRefused) {
  // Was: a stride of -9223372036854775808 (llround of 1e300).
  expect_spec_error("resnet18:rho=1e-300", "rho=1e-300 is too small");
  expect_spec_error("resnet18:rho=1e-300", "above 16384");
  expect_spec_error("resnet18:rho=0.00006", "is too small");
  EXPECT_THROW(stem_stride(1e-300), SpecError);
  ModelSpec s = parse_spec("mobilenetv1");
  s.rho = 1e-300;  // a spec made in code
  EXPECT_MENTIONS(spec_error([&] { build_network(s, dataset_input("cifar10")); }), "is too small");
  // The largest stride is accepted: every padded 3x3 conv still sees one pixel.
  const Network net = build_network("resnet18:rho=0.00006103515625", dataset_input("cifar10"));
  EXPECT_EQ(net.blocks[0].body[0].stride, limits::kMaxInputSide);
  EXPECT_EQ(net.blocks[0].body[0].out, (Shape{64, 1, 1}));
}

TEST(Limits, AbsurdBlocksAreRefusedBeforeBuilding) {
  // Was: hundreds of GB allocated, then std::bad_alloc.
  expect_spec_error("resnet18:blocks=99999999,1,1,1", "blocks=99999999 for stage S1 is too large");
  expect_spec_error("resnet18:blocks=99999999,1,1,1", "at most 1024 blocks per stage");
  expect_spec_error("resnet18:blocks=1,1,1,99999999999999999999999", "for stage S4 is too large");
  expect_spec_error("resnet18:blocks=1,-99999999999999999999999,1,1", "positive integers");
  ModelSpec s = parse_spec("resnet18");
  s.blocks = {1, 2000000000, 1, 1};  // a spec made in code
  EXPECT_MENTIONS(spec_error([&] { build_network(s, dataset_input("cifar10")); }), "for stage S2 is too large");
}

TEST(Limits, LegitimateLargeNetworksKeepExactCounts) {
  // resnet110 on Tiny ImageNet: stem 16x64x64, then 18 blocks of 2 ReLUs per stage.
  EXPECT_EQ(relus("resnet110", "tinyimagenet"), 65536 + 36 * (16 * 64 * 64 + 32 * 32 * 32 + 64 * 16 * 16));
  // vgg16 at alpha=64 on 3x4096x4096 with 1000 classes, and the CIFAR-10 one.
  for (const auto& [alpha, side, classes] : {std::tuple<int64_t, int64_t, int64_t>{1, 32, 10}, {64, 32, 10},
                                             {64, 4096, 1000}, {8, 16384, 1000}}) {
    const std::string spec = "vgg16:alpha=" + std::to_string(alpha);
    const Totals t = build_network(spec, InputSpec{{3, side, side}, classes}).totals();
    const Totals h = vgg16_by_hand(alpha, side, classes);
    EXPECT_EQ(t.relus, h.relus) << spec << " on " << side;
    EXPECT_EQ(t.flops, h.flops) << spec << " on " << side;
    EXPECT_EQ(t.params, h.params) << spec << " on " << side;
  }
  // The most blocks per stage: every block is built, the counts exact.
  const Network deep = build_network("resnet18:blocks=1024,1024,1024,1024", dataset_input("cifar10"));
  EXPECT_EQ(deep.totals().relus, 65536 + 2048 * (65536 + 32768 + 16384 + 8192));
  EXPECT_LE(static_cast<int64_t>(deep.layers().size()), limits::kMaxLayers);
}

TEST(Limits, EveryCountIsChecked) {
  EXPECT_THROW((Shape{int64_t(1) << 21, int64_t(1) << 21, int64_t(1) << 21}.numel()), SpecError);
  EXPECT_EQ((Shape{int64_t(1) << 20, int64_t(1) << 20, int64_t(1) << 22}.numel()), limits::kMaxCount);
  Layer conv;
  conv.name = "x.conv";
  conv.op = Op::Conv;
  conv.in_ch = conv.out_ch = int64_t(1) << 20;
  conv.kernel = 3;
  conv.out = {conv.out_ch, 1 << 14, 1 << 14};
  EXPECT_MENTIONS(spec_error([&] { conv.flops(); }), "layer 'x.conv': FLOPs exceed the limit of 2^62");
  EXPECT_EQ(conv.params(), (int64_t(1) << 40) * 9);
  // A mask's live count must lie within its site.
  Layer relu;
  relu.name = "x.relu";
  relu.op = Op::ReLU;
  relu.out = {2, 2, 2};
  relu.mask = std::make_shared<ReluMask>(ReluMask{{1, 1}, true, 9});
  EXPECT_MENTIONS(spec_error([&] { relu.relus(); }), "mask keeps 9 elements, outside 0..8");
  // Sums of totals.
  Totals t{limits::kMaxCount, 0, 0};
  EXPECT_MENTIONS(spec_error([&] { t += Totals{1, 0, 0}; }), "total ReLUs exceed the limit of 2^62");
  EXPECT_MENTIONS(spec_error([] { count_mul(-1, 2, "FLOPs"); }), "negative");
}

TEST(Limits, SyntheticSourceSharesTheInputLimits) {
  auto err = [](const std::string& src) { return spec_error([&] { parse_source(src); }); };
  EXPECT_MENTIONS(err("synthetic:3x16385x32"), "16385 is outside 1..16384");
  EXPECT_MENTIONS(err("synthetic:1025x8x8"), "1025 is outside 1..1024");
  EXPECT_MENTIONS(err("synthetic:3x32x32:1048577"), "1048577 is outside 1..1048576");
  EXPECT_EQ(parse_source("synthetic:1024x1024x1024:1:8").input.shape, (Shape{1024, 1024, 1024}));  // 2^33 pixels
  EXPECT_MENTIONS(err("synthetic:1024x1024x1024:1:9"), "at most 2^33 pixels");
  // images x pixels beyond int64_t is refused, not wrapped.
  EXPECT_MENTIONS(err("synthetic:1024x16384x16384:1:100000000"), "at most 2^33 pixels");
  EXPECT_MENTIONS(err("synthetic:1024x8x8:8193:1"), "too many classes x channels");
  EXPECT_EQ(parse_source("synthetic:64x32x32:100000:1").input.classes, 100000);  // the old largest set
}

TEST(SpecGrammar, CanonicalFormReadsBackExactly) {
  // Six significant digits would print rho=1/3 as 0.333333, which is not 1/k.
  for (const char* text : {"resnet18:rho=0.3333333333333333", "resnet18:alpha=0.123456789", "resnet18:alpha=0.5"}) {
    const ModelSpec s = parse_spec(text);
    EXPECT_EQ(parse_spec(s.canonical()).canonical(), s.canonical()) << text;
    EXPECT_EQ(parse_spec(s.canonical()).alpha, s.alpha) << text;
    EXPECT_EQ(parse_spec(s.canonical()).rho, s.rho) << text;
  }
  EXPECT_EQ(parse_spec("resnet18:alpha=0.5:rho=0.25").canonical(), "resnet18:alpha=0.5:rho=0.25");
}
