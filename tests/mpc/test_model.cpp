// The dealer's view of a model (architecture, hash), the program, BatchNorm
// folding, quantisation and the plaintext references, and the Z_2^64 kernels.
#include "mpc/cost.h"
#include "mpc/linear.h"
#include "mpc/program.h"
#include "mpc/gate.h"
#include "mpc/gates/poly.h"
#include "mpc_test_util.h"

using namespace dr;
using namespace dr::mpc;
using namespace dr::mpc::test;

namespace {

arch::Network tiny(const std::string& spec = "resnet6:alpha=0.125") { return tiny_net(spec); }

}  // namespace

TEST(Architecture, RoundTripAndRebuild) {
  arch::Network net = tiny();
  mask_half(net, "layer1.0.relu");
  const Architecture a = architecture_of(net);
  ASSERT_EQ(a.masks.size(), 1u);
  const std::string text = serialize_architecture(a);
  const Architecture b = parse_architecture(text);
  EXPECT_EQ(serialize_architecture(b), text);
  const arch::Network rebuilt = build_network(b);
  EXPECT_EQ(rebuilt.totals().relus, net.totals().relus);
  EXPECT_EQ(rebuilt.spec, net.spec);
  EXPECT_EQ(model_hash(b, 12), model_hash(a, 12));
}

TEST(Architecture, HashChangesWithSpecMaskAndFracBits) {
  arch::Network net = tiny();
  const Hash plain = model_hash(architecture_of(net), 12);
  EXPECT_NE(plain, model_hash(architecture_of(net), 13));
  EXPECT_NE(plain, model_hash(architecture_of(tiny("resnet6:alpha=0.25")), 12));
  EXPECT_NE(plain, model_hash(architecture_of(tiny("resnet6:alpha=0.125:cull=S2")), 12));
  mask_half(net, "layer1.0.relu");
  Architecture a = architecture_of(net);
  const Hash masked = model_hash(a, 12);
  EXPECT_NE(plain, masked);
  a.masks.begin()->second.ops[1] = 1;
  a.masks.begin()->second.live += 1;
  EXPECT_NE(masked, model_hash(a, 12));
}

// The ReLU gate is part of the architecture: written only when it is not
// the default (so every earlier record keeps its bytes), read back, in the
// model hash, and a record naming an unknown gate or the default one is refused.
TEST(Architecture, ReluGateRoundTripsAndChangesTheHash) {
  Architecture a = architecture_of(tiny());
  const std::string plain = serialize_architecture(a);
  EXPECT_EQ(plain.find("relu_gate"), std::string::npos);
  a.relu_gate = parse_relu_gate("dpf:24");
  const std::string text = serialize_architecture(a);
  EXPECT_NE(text.find("\"relu_gate\":\"dpf:24\""), std::string::npos) << text;
  const Architecture b = parse_architecture(text);
  EXPECT_EQ(b.relu_gate, a.relu_gate);
  EXPECT_NE(model_hash(b, 12), model_hash(parse_architecture(plain), 12));
  EXPECT_EQ(compile_program(b).relu_gate, a.relu_gate);
  std::string bad = text;
  bad.replace(bad.find("dpf:24"), 6, "dpf:99");
  expect_error([&] { parse_architecture(bad); }, "malformed: ReLU gate 'dpf:99': accepted dcf");
  bad = text;
  bad.replace(bad.find("\"dpf:24\""), 8, "\"dcf\"");
  expect_error([&] { parse_architecture(bad); }, "names the default ReLU gate");
}

TEST(Architecture, BadMasksAndFracBitsRefused) {
  Architecture a = architecture_of(tiny());
  a.masks["layer9.relu"] = arch::ReluMask{{1}, false, 1};
  expect_error([&] { build_network(a); }, "layer9.relu");
  a = architecture_of(tiny());
  a.masks["stem.relu"] = arch::ReluMask{{1, 0, 1}, false, 2};
  expect_error([&] { build_network(a); }, "has 3 entries");
  expect_error([&] { model_hash(a, 0); }, "accepted 1..16");
  expect_error([&] { model_hash(a, 17); }, "accepted 1..16");
  expect_error([&] { parse_architecture("{\"x\":1}"); }, "malformed");
}

TEST(Program, StepsOfTinyResNet) {
  arch::Network net = tiny();
  mask_half(net, "layer1.0.relu");
  const Program p = compile_program(net);
  // stem conv, 4 block convs, 3 projection shortcuts, the FC
  EXPECT_EQ(p.linear_steps.size(), 9u);
  EXPECT_EQ(p.gate_steps.size(), 5u);
  EXPECT_EQ(p.gate_step(1).name, "layer1.0.relu");
  EXPECT_EQ(p.gate_step(1).live.size(), 256u);
  EXPECT_EQ(p.gate_step(1).gate, GateKind::Relu);
  EXPECT_STREQ(kind_name(p.gate_step(1)), "relu");  // what records and cost tables show
  EXPECT_EQ(p.linear(8).name, "head.fc");
  EXPECT_DOUBLE_EQ(p.linear(8).weight_scale, 1.0);  // 8x8 -> 1x1 at stage 4: pool over one pixel
  EXPECT_EQ(p.linear(0).bn, "stem.bn");
  const Program culled = compile_program(tiny("resnet6:alpha=0.125:cull=S1,S2,S3,S4"));
  EXPECT_TRUE(culled.gate_steps.empty());
  EXPECT_EQ(culled.wire_numel[size_t(culled.output_wire)], 4);
}

TEST(Program, CountsDetailCostsExactlyWithoutIndices) {
  // The cost formula reads live_count only: both details cost the same bytes and rounds.
  arch::Network net = tiny();
  mask_half(net, "layer1.0.relu");
  for (auto* l : net.mutable_layers())
    if (l->name == "layer2.0.relu") {  // a channel-wise mask keeping one channel of two
      auto m = std::make_shared<arch::ReluMask>();
      m->channelwise = true;
      m->ops.assign(size_t(l->out.c), 0);
      m->ops[0] = 1;
      m->live = l->out.h * l->out.w;
      l->mask = m;
    }
  const Program full = compile_program(net), counts = compile_program(net, ProgramDetail::Counts);
  ASSERT_EQ(full.steps.size(), counts.steps.size());
  for (size_t i = 0; i < full.steps.size(); ++i) {
    EXPECT_EQ(full.steps[i].live_count, counts.steps[i].live_count) << full.steps[i].name;
    EXPECT_EQ(full.steps[i].live_count, int64_t(full.steps[i].live.size())) << full.steps[i].name;
    EXPECT_TRUE(counts.steps[i].live.empty());
  }
  const ExpectedCost a = expected_cost(full), b = expected_cost(counts), c = expected_cost(net);
  EXPECT_EQ(to_json(a), to_json(b));
  EXPECT_EQ(to_json(a), to_json(c));
  EXPECT_EQ(a.live_relus, net.totals().relus);
  // Was std::bad_alloc: one 8-byte index per ReLU element (2^34 of them).
  const auto huge = arch::build_network("resnet18", arch::InputSpec{{3, 16384, 16384}, 10});
  const ExpectedCost h = expected_cost(huge);
  EXPECT_EQ(h.live_relus, huge.totals().relus);
  EXPECT_EQ(h.relu_bytes, 16 * huge.totals().relus);
  ASSERT_EQ(h.gates.size(), 1u);  // the ReLU gate's totals are the relu_* figures
  EXPECT_EQ(h.gates[0].gate, "relu");
  EXPECT_EQ(h.gates[0].elements, h.live_relus);
  EXPECT_EQ(h.gates[0].bytes, h.relu_bytes);
  EXPECT_EQ(h.gates[0].steps, h.relu_layers);
  const auto deep = arch::build_network("resnet18:blocks=1024,1024,1024,1024", arch::InputSpec{{3, 4096, 4096}, 10});
  EXPECT_EQ(expected_cost(deep).live_relus, deep.totals().relus);
}

// Max pooling of any window of 2x2 or more compiles (both details alike):
// VGG16's 2x2 / 2 as two levels of 2 O and O comparisons, torchvision's
// padded 3x3 / 2 / 1 in four levels (windows of 4, 6 and 9 at the borders
// and inside), and the fixed-point program computes what the float
// reference does; a 1x1 pooling and a BatchNorm without its conv are refused
// naming the layer.
TEST(Program, MaxPoolsOfEveryWindowCompileAndLoneBatchNormIsRefused) {
  arch::Network vgg = arch::build_network("vgg16:alpha=0.125", arch::InputSpec{{3, 32, 32}, 10});
  for (const int64_t kernel : {2, 3}) {
    SCOPED_TRACE(kernel);
    for (arch::Layer* l : vgg.mutable_layers())
      if (l->op == arch::Op::MaxPool) l->kernel = kernel, l->padding = kernel / 2 - (kernel % 2 == 0);
    const Program p = compile_program(vgg), counts = compile_program(vgg, ProgramDetail::Counts);
    ASSERT_EQ(p.steps.size(), counts.steps.size());
    for (size_t i = 0; i < p.steps.size(); ++i) EXPECT_EQ(p.steps[i].live_count, counts.steps[i].live_count) << i;
    // the first pooling: 64 channels x 16 x 16 outputs
    std::vector<int64_t> levels;
    for (const Step& s : p.steps)
      if (s.kind == StepKind::PairDiff && s.name == "stage1.pool") levels.push_back(s.live_count);
    const int64_t O = 8 * 16 * 16;
    if (kernel == 2) {
      EXPECT_EQ(levels, (std::vector<int64_t>{2 * O, O}));
    } else {  // per channel: one 2x2 window, 30 of 2x3, 225 of 3x3
      EXPECT_EQ(levels, (std::vector<int64_t>{8 * (2 + 30 * 3 + 225 * 5), 8 * (1 + 30 * 2 + 225 * 3),
                                              8 * (1 + 30 * 1 + 225 * 2), O}));
      const FloatModel m = random_float_model(vgg, 5);
      const QuantModel q = quantise(p, m, 12);
      const auto x = normalise(vgg.input, m, random_image(vgg.input, 2));
      const auto ref = float_forward(vgg, m, x);
      const auto fix = to_double(fixed_forward(p, q, quantise_input(x, 12)), 12);
      double scale = 0;
      for (double v : ref) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(fix[i], ref[i], 0.02 * std::max(1.0, scale));
    }
  }
  for (arch::Layer* l : vgg.mutable_layers())
    if (l->op == arch::Op::MaxPool) l->kernel = 1, l->padding = 0;
  expect_error([&] { compile_program(vgg); }, "windows of 2x2 or more, not 1x1");
  expect_error([&] { compile_program(vgg); }, "stage1.pool");
  arch::Network net = tiny();
  net.blocks[0].body.erase(net.blocks[0].body.begin());  // stem: bn, relu without the conv
  net.blocks[0].body[0].in = net.input;
  net.blocks[0].body[0].out = net.input;  // shapes no longer matter: refused before
  expect_error([&] { compile_program(net); }, "stem.bn");
}

TEST(Quantisation, FoldedEqualsUnfoldedAndFixedIsClose) {
  for (const std::string spec : {"resnet6:alpha=0.125", "resnet10:alpha=0.125", "mobilenetv2:alpha=0.125"}) {
    arch::Network net = arch::build_network(spec, arch::InputSpec{{3, 16, 16}, 5});
    mask_half(net, "stem.relu");
    const Program program = compile_program(net);
    const FloatModel m = random_float_model(net, 7);
    const auto folded = fold_model(program, m);
    const QuantModel q = quantise(program, m, 12);
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      const auto x = normalise(net.input, m, random_image(net.input, seed));
      const auto ref = float_forward(net, m, x);
      const auto fold = folded_forward(program, folded, x);
      const auto fix = to_double(fixed_forward(program, q, quantise_input(x, 12)), 12);
      ASSERT_EQ(ref.size(), 5u);
      double scale = 0;
      for (double v : ref) scale = std::max(scale, std::fabs(v));
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_NEAR(fold[i], ref[i], 1e-9 * std::max(1.0, scale)) << spec;
        EXPECT_NEAR(fix[i], ref[i], 0.02 * std::max(1.0, scale)) << spec;
      }
    }
  }
}

TEST(Quantisation, RefusesBadFracBitsMissingParamsAndOverflow) {
  const arch::Network net = tiny();
  const Program program = compile_program(net);
  FloatModel m = random_float_model(net, 1);
  expect_error([&] { quantise(program, m, 0); }, "accepted 1..16");
  expect_error([&] { quantise(program, m, 17); }, "accepted 1..16");
  FloatModel missing = m;
  missing.params.erase("layer2.0.bn1.running_var");
  expect_error([&] { quantise(program, missing, 12); }, "layer2.0.bn1.running_var");
  FloatModel wrong = m;
  wrong.params["head.fc.weight"].pop_back();
  expect_error([&] { quantise(program, wrong, 12); }, "head.fc.weight");
  FloatModel big = m;
  for (auto& [name, v] : big.params)
    if (name.find("conv") != std::string::npos)
      for (double& x : v) x *= 3e4;
  const QuantModel q = quantise(program, big, 16);
  const auto x = quantise_input(normalise(net.input, big, random_image(net.input, 3)), 16);
  expect_error([&] { fixed_forward(program, q, x); }, "fixed-point overflow");
}

// The Z_2^64 kernel against a direct convolution, with stride, padding and groups.
TEST(LinearKernel, ConvMatchesDirectLoops) {
  std::mt19937_64 rng(5);
  struct Case { int64_t cin, cout, h, k, stride, groups; };
  for (const Case c : {Case{3, 8, 9, 3, 1, 1}, Case{8, 8, 8, 3, 2, 8}, Case{4, 6, 7, 1, 2, 2}, Case{6, 4, 5, 1, 1, 1},
                       Case{16, 16, 6, 3, 1, 4}}) {
    ConvGeom g;
    g.cin = c.cin, g.cout = c.cout, g.h = g.w = c.h, g.k = c.k, g.stride = c.stride, g.pad = c.k / 2,
    g.groups = c.groups;
    g.oh = g.ow = (c.h + 2 * g.pad - c.k) / c.stride + 1;
    std::vector<uint64_t> w(size_t(g.weight_numel())), x(size_t(g.in_numel()));
    for (auto& v : w) v = rng();
    for (auto& v : x) v = rng();
    std::vector<uint64_t> out(size_t(g.out_numel())), out3(out.size()), ref(out.size(), 0);
    linear_forward<uint64_t>(g, w.data(), x.data(), out.data());
    linear_forward<uint64_t>(g, w.data(), x.data(), out3.data(), 3);
    const int64_t cig = g.cin / g.groups, cog = g.cout / g.groups;
    for (int64_t o = 0; o < g.cout; ++o)
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox)
          for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t ky = 0; ky < g.k; ++ky)
              for (int64_t kx = 0; kx < g.k; ++kx) {
                const int64_t iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
                if (iy < 0 || ix < 0 || iy >= g.h || ix >= g.w) continue;
                const int64_t c_in = (o / cog) * cig + ci;
                ref[size_t((o * g.oh + oy) * g.ow + ox)] +=
                    w[size_t(((o * cig + ci) * g.k + ky) * g.k + kx)] * x[size_t((c_in * g.h + iy) * g.w + ix)];
              }
    EXPECT_EQ(out, ref) << "cin " << c.cin << " groups " << c.groups;
    EXPECT_EQ(out3, ref);
  }
}

// ---------------------------------------------------------------------------
// Sites with polynomial elements
// ---------------------------------------------------------------------------

// A site's ReLU elements are a ReLU gate step, its polynomial elements a
// polynomial gate step right after it on the same wire (identities in
// neither); each step only if it has elements.
TEST(Program, PolynomialSiteIsAReluStepThenAPolyStep) {
  const arch::Network net = poly_net();
  const Program p = compile_program(net), counts = compile_program(net, ProgramDetail::Counts);
  std::vector<std::string> gates;
  for (int i : p.gate_steps) {
    const Step& s = p.steps[size_t(i)];
    gates.push_back(std::string(kind_name(s)) + " " + s.name);
  }
  EXPECT_EQ(gates, (std::vector<std::string>{"relu stem.relu", "relu layer1.0.relu", "poly layer1.0.relu",
                                             "poly layer2.0.relu", "relu layer3.0.relu", "poly layer3.0.relu",
                                             "relu layer4.0.relu"}));
  const Step &relu1 = p.gate_step(1), &poly1 = p.gate_step(2), &poly2 = p.gate_step(3), &poly3 = p.gate_step(5);
  EXPECT_EQ(poly1.in, relu1.out);  // one wire through the site
  EXPECT_TRUE(relu1.opens_with_next);  // and one message for both steps' shares
  EXPECT_TRUE(p.gate_step(4).opens_with_next);
  for (int g : {0, 2, 3, 5, 6}) EXPECT_FALSE(p.gate_step(g).opens_with_next) << g;
  EXPECT_EQ(p.gate_step(4).out, poly3.in);
  EXPECT_EQ(relu1.param, "");
  EXPECT_EQ(poly1.gate, GateKind::Poly);
  EXPECT_EQ(poly1.param, "layer1.0.relu.poly");
  EXPECT_EQ(poly1.channels, 8);
  EXPECT_EQ(poly1.plane, 64);
  for (size_t j = 0; j < relu1.live.size(); ++j) ASSERT_EQ(relu1.live[j] % 3, 0) << j;  // element-wise: R, I, P, R, ...
  for (size_t j = 0; j < poly1.live.size(); ++j) ASSERT_EQ(poly1.live[j] % 3, 2) << j;
  for (int64_t i : poly2.live) ASSERT_EQ(poly2.channel_of(i) % 2, 0) << i;  // channel-wise: P, I, P, ...
  EXPECT_EQ(poly2.live_count, 8 * 16);
  for (int64_t i : poly3.live) ASSERT_EQ(poly3.channel_of(i) % 3, 0) << i;
  int64_t polys = 0;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step &a = p.steps[i], &b = counts.steps[i];
    EXPECT_EQ(a.live_count, int64_t(a.live.size())) << a.name;
    EXPECT_EQ(a.live_count, b.live_count) << a.name;
    EXPECT_EQ(a.param, b.param);
    EXPECT_EQ(a.channels, b.channels);
    if (a.kind == StepKind::Gate && a.gate == GateKind::Poly) polys += a.live_count;
  }
  EXPECT_EQ(polys, net.totals().polys);
}

// The cost formula counts the polynomial gate like any other: a round and 16
// bytes per element online, 40 key bytes per element and party, 16 * C setup
// bytes a step; the ReLU figures stay the ReLUs'. A site with both opens
// them in one message: its polynomial step adds no round.
TEST(Program, PolynomialGateCostsItsOwnFigures) {
  const arch::Network net = poly_net();
  const Program p = compile_program(net);
  const ExpectedCost c = expected_cost(p);
  EXPECT_EQ(to_json(c), to_json(expected_cost(net)));  // the counts detail costs the same
  ASSERT_EQ(c.gates.size(), 2u);
  const GateTotal &relu = c.gates[0], &poly = c.gates[1];
  EXPECT_EQ(relu.gate, "relu");
  EXPECT_EQ(relu.elements, net.totals().relus);
  EXPECT_EQ(relu.steps, 4);
  EXPECT_EQ(c.live_relus, net.totals().relus);
  EXPECT_EQ(poly.gate, "poly");
  EXPECT_EQ(poly.steps, 3);
  int64_t alone = 0;  // polynomial steps of a site without ReLU elements
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    if (s.kind != StepKind::Gate || s.gate != GateKind::Poly) continue;
    const bool beside_relus = i > 0 && p.steps[i - 1].kind == StepKind::Gate && p.steps[i - 1].name == s.name;
    EXPECT_EQ(beside_relus, p.steps[i - 1].opens_with_next) << s.name;
    EXPECT_EQ(c.steps[i].rounds, beside_relus ? 0 : 1) << s.name;
    alone += !beside_relus;
  }
  EXPECT_EQ(alone, 1);  // poly_net: two sites mix ReLUs and polynomials, one polynomials and identities
  EXPECT_EQ(poly.rounds, alone);
  EXPECT_EQ(poly.elements, net.totals().polys);
  EXPECT_EQ(poly.bytes, 16 * net.totals().polys);
  EXPECT_EQ(poly.key_bytes, 40 * net.totals().polys);
  EXPECT_EQ(poly.setup_bytes, 16 * (8 + 16 + 32));
  EXPECT_EQ(relu.key_bytes, int64_t(gate_of(GateKind::Relu).key_bytes()) * net.totals().relus);
  EXPECT_EQ(relu.setup_bytes, 0);
  EXPECT_EQ(c.rounds, 1 + int64_t(p.linear_steps.size()) + 4 + alone);
  EXPECT_EQ(c.online_bytes, 8 * 64 + c.linear_bytes + 16 * (net.totals().relus + net.totals().polys));
  const auto j = to_json(c)["gates"][1];
  EXPECT_EQ(j["gate"], "poly");
  EXPECT_EQ(j["key_bytes"], poly.key_bytes);
  EXPECT_EQ(j["setup_bytes"], poly.setup_bytes);
}

TEST(Architecture, PolynomialMasksRoundTripInVersion2) {
  const arch::Network net = poly_net();
  const Architecture a = architecture_of(net);
  const std::string text = serialize_architecture(a);
  EXPECT_TRUE(contains(text, "\"version\":2")) << text;
  EXPECT_TRUE(contains(text, "\"ops\":\"")) << text;
  EXPECT_FALSE(contains(text, "\"keep\"")) << text;
  const Architecture b = parse_architecture(text);
  EXPECT_EQ(serialize_architecture(b), text);
  EXPECT_EQ(b.masks.at("layer1.0.relu").ops, a.masks.at("layer1.0.relu").ops);
  EXPECT_EQ(b.masks.at("layer2.0.relu").polys, 128);
  const arch::Network rebuilt = build_network(b);
  EXPECT_EQ(rebuilt.totals().relus, net.totals().relus);
  EXPECT_EQ(rebuilt.totals().polys, net.totals().polys);
  EXPECT_EQ(model_hash(b, 12), model_hash(a, 12));
  Architecture relus_only = a;  // a polynomial element turned ReLU: another model
  auto& m = relus_only.masks.at("layer1.0.relu");
  m.ops[2] = static_cast<uint8_t>(arch::SiteOp::Relu), m.live += 1, m.polys -= 1;
  EXPECT_NE(model_hash(relus_only, 12), model_hash(a, 12));
}

// A mask of ReLUs and identities is written as every earlier build wrote it
// (version 1, "keep" bits): its bytes and model hash do not change, and a
// record an earlier build wrote still reads.
TEST(Architecture, MasksWithoutPolynomialsKeepVersion1) {
  arch::Network net = tiny();
  mask_half(net, "layer1.0.relu");
  const std::string text = serialize_architecture(architecture_of(net));
  EXPECT_TRUE(contains(text, "\"version\":1")) << text;
  EXPECT_TRUE(contains(text, "\"keep\":\"5555")) << text;
  EXPECT_FALSE(contains(text, "\"ops\"")) << text;
  // Written by hand as the earlier builds did: stem.relu keeps elements 0 and 9.
  std::string old = R"({"classes":4,"format":"deepreduce-mpc-architecture","input":[1,8,8],"masks":{"stem.relu":)"
                    R"({"channelwise":false,"entries":512,"keep":"0102)" + std::string(2 * 62, '0') +
                    R"(","live":2}},"spec":"resnet6:alpha=0.125","version":1})";
  const Architecture a = parse_architecture(old);
  const arch::ReluMask& mask = a.masks.at("stem.relu");
  EXPECT_EQ(mask.ops[0], 1);
  EXPECT_EQ(mask.ops[9], 1);
  EXPECT_EQ(mask.polys, 0);
  EXPECT_EQ(std::count(mask.ops.begin(), mask.ops.end(), 1), 2);
  EXPECT_EQ(build_network(a).totals().relus, tiny().totals().relus - 510);
  EXPECT_EQ(serialize_architecture(a), old);  // the same bytes back
}

TEST(Architecture, MalformedPolynomialMasksAreRefused) {
  const Architecture a = architecture_of(poly_net());
  const std::string good = serialize_architecture(a);
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    const size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  // layer4.0.relu has no mask; layer2.0.relu's 16 channel entries: P I P I ... = 0x22 per byte
  ASSERT_TRUE(contains(good, R"("ops":"22222222")")) << good;
  // "32": the byte 0x32, LSB first: entries 2, 0, 3, 0
  expect_error([&] { parse_architecture(with(R"("ops":"22222222")", R"("ops":"32222222")")); },
               "mask of 'layer2.0.relu' holds the value 3 at entry 2 (accepted: 0 identity, 1 ReLU, 2 polynomial)");
  expect_error([&] { parse_architecture(with(R"("ops":"22222222")", R"("ops":"222222")")); },
               "has 6 hex digits for 16 entries of 2 bits (expected 8)");
  expect_error([&] { parse_architecture(with(R"("version":2)", R"("version":3)")); },
               "architecture record of version 3 (accepted: version 1 (masks as 'keep' bits) and 2");
  expect_error([&] { parse_architecture(with(R"("version":2)", R"("version":1)")); },
               "mask of 'layer1.0.relu' has 'ops' in a version 1 record");
  expect_error([&] { parse_architecture(with(R"("format":"deepreduce-mpc-architecture")", R"("format":"other")")); },
               "not a deepreduce-mpc-architecture record");
  Architecture counts = a;
  counts.masks.at("layer2.0.relu").polys -= 16;
  expect_error([&] { build_network(counts); },
               "mask for 'layer2.0.relu' says 0 live and 112 polynomial elements, its entries hold 0 and 128");
  Architecture bad = a;
  bad.masks.at("layer2.0.relu").ops[3] = 7;
  expect_error([&] { build_network(bad); }, "holds the value 7 (accepted: 0 identity, 1 ReLU, 2 polynomial)");
  // Canonical: the bits after the last entry are clear (15 entries: the top
  // two bits of the last byte are padding; 0xa2 sets them, 0x22 does not).
  const std::string entries = R"("entries":16,"live":0,"ops":"22222222")";
  expect_error([&] { parse_architecture(with(entries, R"("entries":15,"live":0,"ops":"222222a2")")); },
               "mask of 'layer2.0.relu' has padding bits set after its last entry");
  expect_error([&] { build_network(parse_architecture(with(entries, R"("entries":15,"live":0,"ops":"22222222")"))); },
               "mask for 'layer2.0.relu' has 15 entries, the site has 16 channels");
}

TEST(Quantisation, PolynomialSitesNeedTheirCoefficients) {
  const arch::Network net = poly_net();
  const FloatModel m = random_float_model(net, 3);
  for (const char* site : {"layer1.0.relu", "layer2.0.relu", "layer3.0.relu"}) {
    const auto& v = m.params.at(std::string(site) + ".poly");
    const size_t C = v.size() / 3;
    ASSERT_EQ(v.size(), 3 * C) << site;
    for (size_t c = 0; c < C; ++c) {
      EXPECT_NEAR(v[c], 0.2, 0.05) << site;
      EXPECT_NEAR(v[C + c], 0.5, 0.1) << site;
      EXPECT_NEAR(v[2 * C + c], 0.2, 0.05) << site;
    }
  }
  EXPECT_EQ(m.params.count("stem.relu.poly"), 0u);
  // A network without polynomial elements gets the parameters it always got.
  const arch::Network plain = tiny();
  EXPECT_EQ(random_float_model(plain, 3).params, random_float_model(tiny(), 3).params);
  check_model(net, m);
  FloatModel missing = m;
  missing.params.erase("layer2.0.relu.poly");
  expect_error([&] { check_model(net, missing); },
               "model has no parameter 'layer2.0.relu.poly' (poly site 'layer2.0.relu' needs 48 values)");
  FloatModel wrong = m;
  wrong.params["layer3.0.relu.poly"].pop_back();
  expect_error([&] { check_model(net, wrong); },
               "'layer3.0.relu.poly' has 95 values; poly site 'layer3.0.relu' needs 96");
  FloatModel big = m;
  big.params["layer1.0.relu.poly"][3] = 1e9;
  const Program program = compile_program(net);
  expect_error([&] { quantise(program, big, 12); },
               "polynomial site 'layer1.0.relu' (parameter 'layer1.0.relu.poly'): coefficient a of channel 3");
  const QuantModel q = quantise(program, m, 12);
  ASSERT_EQ(q.gates.size(), program.gate_steps.size());
  EXPECT_TRUE(q.gates[0].empty());  // the ReLU gate has none
  EXPECT_EQ(q.gates[2].size(), 24u);
  EXPECT_EQ(q.gates[2][0], std::llround(m.params.at("layer1.0.relu.poly")[0] * 4096));
}

// The folded double pass of the program equals the network as trained (the
// polynomials included), and the fixed-point reference is close to both.
TEST(Quantisation, PolynomialNetworkFoldedEqualsUnfoldedAndFixedIsClose) {
  const arch::Network net = poly_net();
  const Program program = compile_program(net);
  const FloatModel m = random_float_model(net, 9);
  const auto folded = fold_model(program, m);
  const auto gates = gate_params(program, m);
  const QuantModel q = quantise(program, m, 12);
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const auto x = normalise(net.input, m, random_image(net.input, seed));
    const auto ref = float_forward(net, m, x);
    const auto fold = folded_forward(program, folded, x, gates);
    const auto fix = to_double(fixed_forward(program, q, quantise_input(x, 12)), 12);
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::fabs(v));
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_NEAR(fold[i], ref[i], 1e-9 * std::max(1.0, scale));
      EXPECT_NEAR(fix[i], ref[i], 0.02 * std::max(1.0, scale));
    }
    // without the polynomials the logits differ: the sites are really evaluated
    std::vector<std::vector<double>> zero = gates;
    for (auto& g : zero) std::fill(g.begin(), g.end(), 0.0);
    EXPECT_NE(folded_forward(program, folded, x, zero), fold);
  }
  EXPECT_THROW(folded_forward(program, folded, normalise(net.input, m, random_image(net.input, 1))), std::logic_error);
}
