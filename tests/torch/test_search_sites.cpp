// What a mask search learns at the ReLU sites (train/search_sites.h): the
// distribution-aware fit of the polynomial replacement, its indicator's
// hysteresis, its straight-through gradients, and that its activation is
// exactly what the network a snapshot becomes (nn/poly_site.h) computes.
#include <gtest/gtest.h>

#include "arch/spec.h"
#include "nn/net.h"
#include "nn/poly_site.h"
#include "train/masks.h"
#include "train/search_sites.h"
#include "train/weights.h"

using namespace dr;

namespace {

const char* kSpec = "resnet6:alpha=0.25";
const double kThreshold = 0.01, kBand = 0.002;

arch::Network plain_desc() { return arch::build_network(kSpec, arch::dataset_input("cifar10")); }

// Every score of every site set to `v`, then one step's hysteresis.
void set_scores(train::SearchSites& sites, size_t count, double v) {
  torch::NoGradGuard ng;
  const auto params = sites.parameters();
  for (size_t i = 0; i < count; ++i) params[i].fill_(v);
  sites.before_step(kThreshold);
}

size_t site_count(const arch::Network& d) {
  size_t n = 0;
  for (const arch::Layer* l : d.layers()) n += l->op == arch::Op::ReLU && l->live;
  return n;
}

}  // namespace

TEST(ReluQuadraticFit, IsTheLeastSquaresFitPerChannel) {
  torch::manual_seed(1);
  // Channel 0: N(0, 1), whose fit is known in closed form; channel 1: N(1, 0.5)
  // against a direct least-squares solve; channel 2: constant (no fit: the default).
  const int64_t n = 200000;
  const torch::Tensor x0 = torch::randn({n}), x1 = 1 + 0.5 * torch::randn({n}), x2 = torch::full({n}, 0.3);
  train::ReluQuadraticFit fit;
  const torch::Tensor all = torch::stack({x0, x1, x2}, 1).view({n, 3, 1, 1});
  fit.add(all.slice(0, 0, n / 2));
  fit.add(all.slice(0, n / 2, n));  // batch by batch
  const torch::Tensor k = fit.coefficients();
  ASSERT_EQ(k.sizes(), (std::vector<int64_t>{3, 3}));
  EXPECT_NEAR(k[0][0].item<double>(), nn::kPolyInitA, 0.01);
  EXPECT_NEAR(k[1][0].item<double>(), nn::kPolyInitB, 0.01);
  EXPECT_NEAR(k[2][0].item<double>(), nn::kPolyInitC, 0.01);
  const torch::Tensor v = x1.to(torch::kFloat64);
  const torch::Tensor design = torch::stack({v * v, v, torch::ones_like(v)}, 1);
  const torch::Tensor want = std::get<0>(torch::linalg::lstsq(design, torch::relu(v).unsqueeze(1), {}, {})).squeeze(1);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(k[i][1].item<double>(), want[i].item<double>(), 1e-4) << i;
  EXPECT_NEAR(k[0][2].item<double>(), nn::kPolyInitA, 1e-7);  // constant channel: the N(0, 1) fit
  EXPECT_NEAR(k[1][2].item<double>(), nn::kPolyInitB, 1e-7);
}

TEST(SearchSites, PolynomialIndicatorHasHysteresis) {
  nn::Net net(plain_desc());
  auto sites = train::make_search_sites("poly", kBand);  // the default: may-return
  sites->attach(net, torch::kCPU);
  const int64_t all = net->desc().totals().relus;
  const size_t n = site_count(net->desc());
  EXPECT_EQ(sites->live(kThreshold), all);
  set_scores(*sites, n, kThreshold - kBand / 2);  // inside the band: no change
  EXPECT_EQ(sites->live(kThreshold), all);
  set_scores(*sites, n, kThreshold - 2 * kBand);  // below it: every element a polynomial
  EXPECT_EQ(sites->live(kThreshold), 0);
  set_scores(*sites, n, kThreshold + kBand / 2);  // back into the band: still polynomials
  EXPECT_EQ(sites->live(kThreshold), 0);
  set_scores(*sites, n, kThreshold + 2 * kBand);  // above it: ReLUs again
  EXPECT_EQ(sites->live(kThreshold), all);
  // SNL's masks count what is above the threshold, with no memory.
  auto snl = train::make_search_sites("identity", kBand);
  nn::Net other(plain_desc());
  snl->attach(other, torch::kCPU);
  set_scores(*snl, site_count(other->desc()), kThreshold - kBand / 2);
  EXPECT_EQ(snl->live(kThreshold), 0);
  EXPECT_THROW(train::make_search_sites("cube", kBand), std::invalid_argument);
  EXPECT_THROW(train::make_search_sites("poly", kBand, "element", "sometimes"), std::invalid_argument);
}

// --removed stay: an element the indicator replaced stays a
// polynomial whatever its score does next, and a snapshot ranks every live
// element above every replaced one, so it keeps what the search kept.
TEST(SearchSites, ReplacedElementsStayReplacedAndRankBelowLiveOnes) {
  nn::Net net(plain_desc());
  auto sites = train::make_search_sites("poly", kBand, "element", "stay");
  sites->attach(net, torch::kCPU);
  const int64_t all = net->desc().totals().relus;
  const size_t n = site_count(net->desc());
  const auto params = sites->parameters();
  const int64_t first = params[0].numel();  // the first site's elements
  {
    torch::NoGradGuard ng;
    params[0].fill_(kThreshold - 2 * kBand);  // replaced
  }
  sites->before_step(kThreshold);
  EXPECT_EQ(sites->live(kThreshold), all - first);
  {
    torch::NoGradGuard ng;
    params[0].fill_(5);  // their scores rise far past the band, above every live element's
    for (size_t i = 1; i < n; ++i) params[i].fill_(0.5);
  }
  sites->before_step(kThreshold);
  EXPECT_EQ(sites->live(kThreshold), all - first);  // still replaced
  arch::Network desc = plain_desc();
  train::apply_masks(desc, train::keep_largest(desc, sites->scores(), all - first, sites->dropped()));
  EXPECT_EQ(desc.totals().relus, all - first);
  int64_t polys_in_first = 0;
  for (const arch::Layer* l : desc.layers())
    if (l->op == arch::Op::ReLU && l->live) {
      polys_in_first = l->polys();  // the first live site in forward order
      break;
    }
  EXPECT_EQ(polys_in_first, first);
  EXPECT_EQ(desc.totals().polys, first);
  // AutoReP's loop (may-return): the same rise makes them ReLUs again.
  nn::Net other(plain_desc());
  auto loop = train::make_search_sites("poly", kBand, "element", "may-return");
  loop->attach(other, torch::kCPU);
  const auto q = loop->parameters();
  {
    torch::NoGradGuard ng;
    q[0].fill_(kThreshold - 2 * kBand);
  }
  loop->before_step(kThreshold);
  EXPECT_EQ(loop->live(kThreshold), all - first);
  {
    torch::NoGradGuard ng;
    q[0].fill_(5);
  }
  loop->before_step(kThreshold);
  EXPECT_EQ(loop->live(kThreshold), all);
}

// --flip-rate: a step flips at most that fraction of the live ReLUs each
// way, the lowest scores falling first (the highest rising first); the
// others wait and flip in later steps. Channel-wise, a channel counts as its
// elements and one channel moves even when it is larger than the cap.
TEST(SearchSites, PacedIndicatorFlipsAtMostTheRateLowestScoresFirst) {
  torch::manual_seed(6);
  const double rate = 0.1;
  nn::Net net(plain_desc());
  auto sites = train::make_search_sites("poly", kBand, "element", "may-return", rate);
  sites->attach(net, torch::kCPU);
  const int64_t all = net->desc().totals().relus;
  const size_t n = site_count(net->desc());
  const auto params = sites->parameters();
  {
    torch::NoGradGuard ng;  // every score below the band, each a different distance
    for (size_t i = 0; i < n; ++i) params[i].uniform_(-1, kThreshold - 2 * kBand);
  }
  sites->before_step(kThreshold);
  const int64_t cap = static_cast<int64_t>(rate * static_cast<double>(all));
  ASSERT_EQ(sites->live(kThreshold), all - cap);
  // The replaced ones are the lowest scores: a snapshot's ranking gives a
  // replaced element its raw score and lifts every live one above 1.
  {
    std::vector<torch::Tensor> raw, replaced;
    for (size_t k = 0; k < n; ++k) raw.push_back(params[k].detach().flatten());
    const torch::Tensor before = torch::cat(raw).clone();
    for (const auto& [name, ranked] : sites->scores()) replaced.push_back(ranked.flatten().masked_select(ranked.flatten().lt(0.5)));
    const torch::Tensor lowest = std::get<0>(torch::cat(raw).sort()).slice(0, 0, cap);
    EXPECT_TRUE(torch::equal(std::get<0>(torch::cat(replaced).sort()), lowest));
    // Ranking leaves the search's scores as they were (on the CPU it once
    // lifted every live score at each snapshot).
    raw.clear();
    for (size_t k = 0; k < n; ++k) raw.push_back(params[k].detach().flatten());
    EXPECT_TRUE(torch::equal(torch::cat(raw), before));
  }
  int64_t live = all - cap, steps = 1;
  for (; live > 0 && steps < 1000; ++steps) {
    const int64_t step_cap = std::max<int64_t>(1, static_cast<int64_t>(rate * static_cast<double>(live)));
    sites->before_step(kThreshold);
    ASSERT_EQ(sites->live(kThreshold), live - std::min(step_cap, live));
    live = sites->live(kThreshold);
  }
  EXPECT_EQ(live, 0);  // every element replaced in the end
  {
    torch::NoGradGuard ng;  // every score above the band: they come back paced, from one a step while none is live
    for (size_t i = 0; i < n; ++i) params[i].uniform_(kThreshold + 2 * kBand, 1);
  }
  sites->before_step(kThreshold);
  EXPECT_EQ(sites->live(kThreshold), 1);
  for (int k = 0; k < 40; ++k) sites->before_step(kThreshold);
  const int64_t back = sites->live(kThreshold);
  EXPECT_GT(back, 1);
  EXPECT_LT(back, all);

  // Channel-wise: the cap in elements; a channel larger than it still moves, one a step.
  nn::Net other(plain_desc());
  auto channels = train::make_search_sites("poly", kBand, "channel", "may-return", 1e-6);
  channels->attach(other, torch::kCPU);
  const auto q = channels->parameters();
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < n; ++i) q[i].uniform_(-1, kThreshold - 2 * kBand);
  }
  channels->before_step(kThreshold);
  const int64_t moved = all - channels->live(kThreshold);
  EXPECT_GT(moved, 0);
  bool one_channel = false;
  for (const arch::Layer* l : other->desc().layers())
    one_channel = one_channel || (l->op == arch::Op::ReLU && l->out.h * l->out.w == moved);
  EXPECT_TRUE(one_channel) << moved << " elements moved";
}

// The search's activation with every indicator at 0 is the all-polynomial
// network a snapshot becomes, with the same weights and coefficients; at 1 it
// is the plain network.
TEST(SearchSites, PolynomialActivationIsWhatTheSnapshotComputes) {
  torch::manual_seed(3);
  nn::Net search(plain_desc());
  auto sites = train::make_search_sites("poly", kBand);
  sites->attach(search, torch::kCPU);
  const size_t n = site_count(search->desc());
  {
    torch::NoGradGuard ng;
    const auto params = sites->parameters();
    for (size_t i = n; i < params.size(); ++i) params[i].normal_(0.3, 0.2);  // the coefficients
  }
  const torch::Tensor x = torch::randn({2, 3, 32, 32});
  search->eval();
  nn::Net plain(plain_desc());
  train::load_into(plain, train::state_dict(search), true, "search weights");
  plain->eval();
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::allclose(search->forward(x), plain->forward(x), 1e-5, 1e-5));  // every indicator 1
  set_scores(*sites, n, -1);  // every indicator 0
  arch::Network desc = plain_desc();
  std::map<std::string, torch::Tensor> zero;
  for (const auto& [name, s] : sites->scores()) zero[name] = torch::zeros_like(s);
  train::apply_masks(desc, train::keep_largest(desc, zero, 0, sites->dropped()));
  EXPECT_EQ(desc.totals().relus, 0);
  EXPECT_EQ(desc.totals().polys, plain_desc().totals().relus);
  nn::Net snapshot(desc);
  train::StateDict w = train::state_dict(search);
  for (const auto& [k, v] : sites->snapshot_parameters()) w[k] = v;
  train::load_into(snapshot, w, true, "snapshot weights");
  snapshot->eval();
  EXPECT_TRUE(torch::allclose(search->forward(x), snapshot->forward(x), 1e-4, 1e-5));
}

// Straight through: an element's score gets the gradient of choosing ReLU
// over its polynomial whatever the indicator says; the coefficients get a
// gradient only through elements that are polynomials.
TEST(SearchSites, GradientsReachScoresAndCoefficientsStraightThrough) {
  torch::manual_seed(4);
  nn::Net net(plain_desc());
  auto sites = train::make_search_sites("poly", kBand);
  sites->attach(net, torch::kCPU);
  const size_t n = site_count(net->desc());
  net->train();
  auto step = [&] {
    for (auto& p : sites->parameters()) p.mutable_grad() = torch::Tensor();
    net->forward(torch::randn({4, 3, 32, 32})).pow(2).sum().backward();
    const auto params = sites->parameters();
    double scores = 0, coefficients = 0;
    for (size_t i = 0; i < params.size(); ++i)
      (i < n ? scores : coefficients) += params[i].grad().defined() ? params[i].grad().abs().sum().item<double>() : 0;
    return std::make_pair(scores, coefficients);
  };
  const auto [s1, c1] = step();  // every element a ReLU
  EXPECT_GT(s1, 0);
  EXPECT_EQ(c1, 0);
  set_scores(*sites, n, -1);  // every element a polynomial
  const auto [s0, c0] = step();
  EXPECT_GT(s0, 0);
  EXPECT_GT(c0, 0);
}

// A site after a fully connected layer sees N x C (VGG16's classifier ReLUs):
// each way of replacing a ReLU keeps the batch and gives that site's own
// elements, as at a convolutional site.
TEST(SearchSites, SitesAfterFullyConnectedLayersKeepTheBatch) {
  torch::manual_seed(5);
  const arch::Network desc = arch::build_network("vgg16:alpha=0.0625", arch::InputSpec{{3, 32, 32}, 10});
  bool fc_site = false;
  for (const arch::Layer* l : desc.layers()) fc_site = fc_site || (l->op == arch::Op::ReLU && l->stage == "FC");
  ASSERT_TRUE(fc_site);
  for (const std::string replace : {"identity", "poly"}) {
    nn::Net net(desc);
    auto sites = train::make_search_sites(replace, kBand);
    sites->attach(net, torch::kCPU);
    net->train();
    const torch::Tensor y = net->forward(torch::randn({6, 3, 32, 32}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{6, 10})) << replace;
    y.pow(2).sum().backward();
  }
}
