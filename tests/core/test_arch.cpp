// The network description: ReLU counts of the appendix (docs/method.md section 3),
// FLOPs/params checked by hand, stage splits, and bad specs.
#include <gtest/gtest.h>

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
  expect_spec_error("vgg16:blocks=1,1,1,1,1", "ResNet families only");
  expect_spec_error("resnet18:cull=S1:keep=S2", "not both");
  expect_spec_error("resnet18:alpha=0.5:alpha=0.5", "given twice");
  expect_spec_error("resnet18::thin", "empty part");
  expect_spec_error("resnet18:alpha=0.001", "with none");
  // spatial size below 1
  expect_spec_error("vgg16", "spatial size shrinks below 1", "fashion-mnist");
  expect_spec_error("vgg16:rho=0.5", "stage5.pool", "cifar10");
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
