// The dealer's view of a model (architecture, hash), the program, BatchNorm
// folding, quantisation and the plaintext references, and the Z_2^64 kernels.
#include "mpc/cost.h"
#include "mpc/linear.h"
#include "mpc/program.h"
#include "mpc/gate.h"
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
  a.masks.begin()->second.keep[1] = 1;
  a.masks.begin()->second.live += 1;
  EXPECT_NE(masked, model_hash(a, 12));
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
      m->keep.assign(size_t(l->out.c), 0);
      m->keep[0] = 1;
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

TEST(Program, RefusesMaxPoolAndLoneBatchNorm) {
  const auto vgg = arch::build_network("vgg16:alpha=0.125", arch::InputSpec{{3, 32, 32}, 10});
  expect_error([&] { compile_program(vgg); }, "not supported by the private runtime");
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
