// What a network costs in deepreduce's runtime before it runs (pi/private_cost.h):
// the exact bytes and rounds are the runtime's formula, the modelled compute
// is the time model's sum, a mask search's plan meets the cost of the masked
// networks it makes, and budgets and model files are checked.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "arch/spec.h"
#include "mpc/cost.h"
#include "mpc/gate.h"
#include "mpc/keys.h"
#include "mpc/program.h"
#include "pi/private_cost.h"
#include "test_util.h"
#include "util/fs.h"

using namespace dr::pi;
using dr::arch::Network;
using dr::arch::SiteOp;
using dr::test::contains;
using dr::test::EnvGuard;
using dr::test::ScratchDir;

namespace {

TimeModel model() {
  TimeModel m;
  m.base_s = 1e-3, m.per_relu_s = 1e-6, m.per_poly_s = 1e-7, m.per_mac_s = 1e-9, m.per_round_s = 1e-4;
  return m;
}

Network small() { return dr::arch::build_network("resnet6:alpha=0.125", dr::arch::InputSpec{{1, 12, 12}, 4}); }

// `net` with each live site's first `keep` elements ReLUs (at least one, at
// most all) and the others `dropped`.
Network masked(Network net, int64_t keep, SiteOp dropped) {
  for (auto* l : net.mutable_layers()) {
    if (l->op != dr::arch::Op::ReLU || !l->live) continue;
    const int64_t n = l->out.c * l->out.h * l->out.w;
    auto m = std::make_shared<dr::arch::ReluMask>();
    m->ops.assign(static_cast<size_t>(n), static_cast<uint8_t>(dropped));
    const int64_t k = std::clamp<int64_t>(keep, 1, n);
    for (int64_t i = 0; i < k; ++i) m->ops[static_cast<size_t>(i)] = static_cast<uint8_t>(SiteOp::Relu);
    m->live = k;
    m->polys = dropped == SiteOp::Poly ? n - k : 0;
    l->mask = m;
  }
  return net;
}

}  // namespace

TEST(PrivateCost, BytesAndRoundsAreTheRuntimesFormulaAndComputeTheModelsSum) {
  const Network net = small();
  const TimeModel m = model();
  const PrivateCost c = private_cost(net, m);
  const dr::mpc::ExpectedCost e = dr::mpc::expected_cost(net);
  EXPECT_EQ(c.relus, net.totals().relus);
  EXPECT_EQ(c.polys, 0);
  EXPECT_EQ(c.macs, net.totals().flops);
  EXPECT_EQ(c.online_bytes, e.online_bytes);
  EXPECT_EQ(c.client_sent + c.server_sent, e.online_bytes);
  EXPECT_EQ(c.rounds, e.rounds);
  // The key: what the dealer writes per image for the larger party (the server: the linear layers' masks too).
  int64_t server_key = 0;
  for (const uint64_t b : dr::mpc::step_key_bytes(dr::mpc::compile_program(net, dr::mpc::ProgramDetail::Counts),
                                                  dr::mpc::Party::Server))
    server_key += static_cast<int64_t>(b);
  EXPECT_EQ(c.key_bytes, server_key);
  EXPECT_GE(c.key_bytes, 2080 * c.relus);
  EXPECT_DOUBLE_EQ(c.compute_s, 1e-3 + 1e-6 * c.relus + 1e-9 * c.macs + 1e-4 * c.rounds);
  // The link: per round its RTT, the larger direction at its rate.
  EXPECT_DOUBLE_EQ(c.seconds(kWan), c.compute_s + c.rounds * 40e-3 +
                                        static_cast<double>(std::max(c.client_sent, c.server_sent)) * 8 / 100e6);
  EXPECT_EQ(&find_link("lan"), &kLan);
  EXPECT_TRUE(contains(dr::test::message_of<std::invalid_argument>([] { find_link("5g", "--link"); }),
                       "--link '5g' is not accepted (accepted: lan, wan)"));
}

// The plan of a search is linear in its live ReLUs and meets, exactly, the
// networks it makes when every site keeps a ReLU: SNL (identities) and
// polynomial replacement (mixed sites: two gate steps opened in one message).
TEST(PrivateCost, ASearchsPlanIsTheCostOfTheNetworksItMakes) {
  const Network start = small();
  const TimeModel m = model();
  for (const SiteOp dropped : {SiteOp::Identity, SiteOp::Poly}) {
    const SearchCost plan = search_cost(start, dropped, m);
    EXPECT_EQ(plan.relus, start.totals().relus);
    for (const int64_t keep : {1, 7, 40}) {
      const Network net = masked(start, keep, dropped);
      const PrivateCost real = private_cost(net, m), planned = cost_at(plan, net.totals().relus);
      EXPECT_EQ(planned.online_bytes, real.online_bytes) << keep;
      EXPECT_EQ(planned.client_sent, real.client_sent) << keep;
      EXPECT_EQ(planned.rounds, real.rounds) << keep;
      EXPECT_EQ(planned.polys, real.polys) << keep;
      EXPECT_EQ(planned.key_bytes, real.key_bytes) << keep;
      EXPECT_NEAR(planned.compute_s, real.compute_s, 1e-12) << keep;
    }
    // All ReLUs: the start itself, its rounds too (a polynomial adds none to a site with ReLUs).
    const PrivateCost all = cost_at(plan, plan.relus), start_cost = private_cost(start, m);
    EXPECT_EQ(all.online_bytes, start_cost.online_bytes);
    EXPECT_EQ(all.rounds, start_cost.rounds);
  }
  // A polynomial element moves as many online bytes as a ReLU: the plan's bytes do not fall.
  const SearchCost poly = search_cost(start, SiteOp::Poly, m);
  EXPECT_EQ(cost_at(poly, 0).online_bytes, cost_at(poly, poly.relus).online_bytes);
  const SearchCost snl = search_cost(start, SiteOp::Identity, m);
  EXPECT_EQ(cost_at(snl, snl.relus).online_bytes - cost_at(snl, 0).online_bytes, 16 * snl.relus);
  // Its key is what it saves: 40 bytes an element for a ReLU's 2,080.
  EXPECT_EQ(cost_at(poly, poly.relus).key_bytes - cost_at(poly, 0).key_bytes, (2080 - 40) * poly.relus);
  EXPECT_EQ(CostBudget{CostBudget::Unit::KeyMb}.unit_text(), "key MB per party");
}

// With the two-round ReLU gate (dpf:24: 369-byte keys, its DReLU bits 32 to
// a word) the plan prices that gate: exact at the start and at R = 0, its
// rounds and keys exact at every R, its bytes within a word per site each
// way between them.
TEST(PrivateCost, ASearchsPlanPricesTheChosenReluGate) {
  const Network start = small();
  const TimeModel m = model();
  const dr::mpc::ReluGateChoice dpf = dr::mpc::parse_relu_gate("dpf:24");
  for (const SiteOp dropped : {SiteOp::Identity, SiteOp::Poly}) {
    const SearchCost plan = search_cost(start, dropped, m, dpf);
    const PrivateCost all = cost_at(plan, plan.relus), start_cost = private_cost(start, m, dpf);
    EXPECT_EQ(all.online_bytes, start_cost.online_bytes);
    EXPECT_EQ(all.rounds, start_cost.rounds);
    EXPECT_EQ(all.key_bytes, start_cost.key_bytes);
    EXPECT_GT(start_cost.rounds, private_cost(start, m).rounds);  // a second round per ReLU layer
    const int64_t sites = 5;                                        // small(): resnet6's ReLU sites
    for (const int64_t keep : {1, 7, 40}) {
      const Network net = masked(start, keep, dropped);
      const PrivateCost real = private_cost(net, m, dpf), planned = cost_at(plan, net.totals().relus);
      EXPECT_NEAR(double(planned.online_bytes), double(real.online_bytes), 16.0 * sites) << keep;
      EXPECT_EQ(planned.rounds, real.rounds) << keep;
      EXPECT_EQ(planned.key_bytes, real.key_bytes) << keep;
    }
  }
  const SearchCost snl = search_cost(start, SiteOp::Identity, m, dpf);
  EXPECT_EQ(cost_at(snl, snl.relus).key_bytes - cost_at(snl, 0).key_bytes,
            int64_t(dr::mpc::gate_of(dr::mpc::GateKind::Relu, dpf).key_bytes()) * snl.relus);
}

// Batches share a batch's rounds among its images: per image, the link's
// round trips fall B times, its bytes and the compute stay an image's.
TEST(PrivateCost, BatchesShareTheRoundTrips) {
  const PrivateCost c = private_cost(small(), model());
  const double bytes_s = static_cast<double>(std::max(c.client_sent, c.server_sent)) * 8.0 / kWan.bits_per_s;
  EXPECT_NEAR(c.seconds(kWan), c.compute_s + static_cast<double>(c.rounds) * kWan.rtt_s + bytes_s, 1e-12);
  EXPECT_NEAR(c.seconds(kWan, 8), c.compute_s + static_cast<double>(c.rounds) * kWan.rtt_s / 8 + bytes_s, 1e-12);
  EXPECT_EQ(c.seconds(kLan, 1), c.seconds(kLan));
}

TEST(PrivateCost, RelusWithinIsTheLargestCountThatFits) {
  const SearchCost plan = search_cost(small(), SiteOp::Identity, model());
  const auto mb = [](double v) { return CostBudget{CostBudget::Unit::Mb, v, nullptr}; };
  const auto bytes = [&](int64_t r) { return static_cast<double>(cost_at(plan, r).online_bytes) / 1e6; };
  const int64_t r = plan.relus / 3;
  EXPECT_EQ(relus_within(plan, mb(bytes(r))), r);                 // exactly at R's cost
  EXPECT_EQ(relus_within(plan, mb(bytes(r) - 1e-7)), r - 1);      // a byte less: one ReLU fewer (16 B each)
  EXPECT_EQ(relus_within(plan, mb(bytes(0) - 1e-6)), -1);         // below the network without ReLUs
  EXPECT_EQ(relus_within(plan, mb(1e6)), plan.relus);             // everything fits
  const CostBudget wan{CostBudget::Unit::Ms, 1e3 * cost_at(plan, r).seconds(kWan), &kWan};
  EXPECT_EQ(relus_within(plan, wan), r);
  EXPECT_EQ(wan.unit_text(), "ms on WAN");
  EXPECT_EQ(mb(1.5).text(), "1.5 MB");
}

TEST(PrivateCost, BudgetListsAreChecked) {
  const auto b = parse_cost_budgets("300, 100", CostBudget::Unit::Ms, &kLan, "--budget-ms");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].value, 100);
  EXPECT_EQ(b[0].text(), "300 ms on LAN");
  for (const char* bad : {"", "0", "-1", "abc", "1e12", "nan", "5,", "inf"}) {
    const std::string e = dr::test::message_of<std::invalid_argument>(
        [&] { parse_cost_budgets(bad, CostBudget::Unit::Mb, nullptr, "--budget-mb"); });
    EXPECT_TRUE(contains(e, "--budget-mb")) << bad << ": " << e;
  }
}

TEST(PrivateCost, TheShippedTimeModelLoadsAndBadOnesAreNamed) {
  {
    EnvGuard g("DEEPREDUCE_PI_TIME_MODEL", nullptr);
    const TimeModel m = load_time_model();
    EXPECT_GT(m.per_relu_s, 0);  // measured by bench/pi_time_model.sh
    EXPECT_TRUE(m.provenance.contains("cpu"));
  }
  const ScratchDir d("time-model");
  const std::pair<std::string, std::string> cases[] = {
      {"{", "not JSON"},
      {"{}", "no \"seconds\" object"},
      {R"({"seconds": {"base": 0, "per_relu": 1, "per_poly": 0, "per_mac": 0}})", "\"per_round\" must be a number"},
      {R"({"seconds": {"base": 0, "per_relu": -1, "per_poly": 0, "per_mac": 0, "per_round": 0}})",
       "\"per_relu\" must be finite and >= 0"},
  };
  for (const auto& [text, says] : cases) {
    const std::string path = d / "m.json";
    dr::util::write_file_atomic(path, text);
    const std::string e = dr::test::message_of<std::runtime_error>([&] { load_time_model(path); });
    EXPECT_TRUE(contains(e, "PI time model '" + path + "'")) << e;
    EXPECT_TRUE(contains(e, says)) << text << ": " << e;
  }
  EXPECT_TRUE(contains(dr::test::message_of<std::runtime_error>([&] { load_time_model(d / "none.json"); }),
                       "no such file"));
}
