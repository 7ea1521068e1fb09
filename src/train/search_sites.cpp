#include "train/search_sites.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "arch/relu_site.h"
#include "data/device_batches.h"
#include "nn/poly_site.h"

namespace dr::train {

void SearchSites::attach(nn::Net& net, torch::Device device) {
  for (const arch::Layer* l : net->desc().layers()) {
    const arch::ReluKind kind = arch::relu_kind(*l);
    if (kind == arch::ReluKind::Masked)
      throw std::invalid_argument("mask search: ReLU site " + l->name +
                                  " already has a fixed mask (start from a network without masks)");
    if (kind != arch::ReluKind::Plain) continue;
    const int64_t h = channelwise_ ? 1 : l->out.h, w = channelwise_ ? 1 : l->out.w;
    Site s{l, torch::ones({1, l->out.c, h, w}, torch::TensorOptions().device(device)).requires_grad_(true),
           channelwise_ ? l->out.h * l->out.w : 1};
    index_[l->name] = sites_.size();
    sites_.push_back(s);
    add_site(s, device);
  }
  install(net);
}

void SearchSites::install(nn::Net& net) {
  // A site after a fully connected layer (VGG's, an imported network's) sees
  // N x C: as N x C x 1 x 1 it broadcasts with its [1, C, 1, 1] scores.
  net->set_site_activation([this](const arch::Layer& site, const torch::Tensor& x) {
    const Site& s = sites_[index_.at(site.name)];
    if (x.dim() == 2) return activate(s, x.view({x.size(0), x.size(1), 1, 1})).flatten(1);
    return activate(s, x);
  });
}

std::vector<torch::Tensor> SearchSites::parameters() const {
  std::vector<torch::Tensor> out;
  for (const Site& s : sites_) out.push_back(s.score);
  return out;
}

// A channel's score weighs as its elements: the lasso prices every element alike.
torch::Tensor SearchSites::l1() const {
  torch::Tensor sum;
  for (const Site& s : sites_) {
    const torch::Tensor l = s.score.abs().sum() * static_cast<double>(s.elements_per_score);
    sum = sum.defined() ? sum + l : l;
  }
  return sum;
}

int64_t SearchSites::count_elements(const Site& s, const torch::Tensor& set) {
  return static_cast<int64_t>(set.sum().item<double>()) * s.elements_per_score;
}

std::map<std::string, torch::Tensor> SearchSites::scores() const {
  std::map<std::string, torch::Tensor> out;
  for (const Site& s : sites_) {
    // A copy: on the CPU .cpu() is the score itself, and a caller may change
    // what it gets (the polynomial ranking adds to it).
    const torch::Tensor t = s.score.detach().cpu().clone().squeeze(0);
    out[s.layer->name] = (channelwise_ ? t.reshape({t.size(0)}) : t).contiguous();
  }
  return out;
}

std::map<std::string, torch::Tensor> SearchSites::checkpoint_tensors() const {
  std::map<std::string, torch::Tensor> out;
  for (const Site& s : sites_) out["mask/" + s.layer->name] = s.score;
  return out;
}

namespace {

// SNL: y = m * relu(x) + (1 - m) * x = x + m * relu(-x).
class IdentitySites final : public SearchSites {
 public:
  explicit IdentitySites(bool channelwise) : SearchSites(channelwise) {}
  int64_t live(double threshold) const override {
    torch::NoGradGuard ng;
    int64_t n = 0;
    for (const Site& s : sites_) n += count_elements(s, s.score.gt(threshold));
    return n;
  }
  arch::SiteOp dropped() const override { return arch::SiteOp::Identity; }

 private:
  torch::Tensor activate(const Site& site, const torch::Tensor& x) const override {
    return x + site.score * torch::relu(-x);
  }
  void add_site(const Site&, torch::Device) override {}
};

// AutoReP-style: a straight-through indicator with hysteresis chooses between
// relu and the channel's quadratic.
class PolynomialSites final : public SearchSites {
 public:
  PolynomialSites(double band, bool channelwise, bool may_return, double flip_rate)
      : SearchSites(channelwise), band_(band), may_return_(may_return), flip_rate_(flip_rate) {}

  std::vector<torch::Tensor> parameters() const override {
    std::vector<torch::Tensor> out = SearchSites::parameters();
    for (const auto& c : coef_) out.push_back(c);
    return out;
  }
  int64_t live(double) const override {
    torch::NoGradGuard ng;
    int64_t n = 0;
    for (size_t i = 0; i < sites_.size(); ++i) n += count_elements(sites_[i], indicator_[i]);
    return n;
  }
  // The hysteresis, paced: with a flip rate, at most that fraction of the
  // live ReLUs (counted before the step) fall in one step, the lowest scores
  // first, and as many rise, the highest first; the others wait with their
  // indicator as it was and flip in a later step if their score stays past
  // the band. Adam moves every score by about its learning rate a step
  // whatever the gradient's size, so scores pulled alike cross the band
  // together: unpaced, tens of thousands of elements flipped within a few
  // steps and training fell to chance (docs/experiments.md).
  void before_step(double threshold) override {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> fall, rise;
    for (size_t i = 0; i < sites_.size(); ++i) {
      const torch::Tensor& s = sites_[i].score;
      const torch::Tensor on = indicator_[i].gt(0.5);
      fall.push_back(on & s.lt(threshold - band_));
      if (may_return_) rise.push_back(~on & s.gt(threshold + band_));  // --removed stay: none rise
    }
    if (flip_rate_ > 0) {
      const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(flip_rate_ * static_cast<double>(live(threshold))));
      limit_flips(fall, cap, /*highest_first=*/false);
      if (may_return_) limit_flips(rise, cap, /*highest_first=*/true);
    }
    for (size_t i = 0; i < sites_.size(); ++i) {
      indicator_[i].masked_fill_(fall[i], 0);
      if (may_return_) indicator_[i].masked_fill_(rise[i], 1);
    }
  }
  // A live element (h = 1) outranks every replaced one whatever their
  // scores: once replaced, an element's score may rise again without its
  // indicator following (--removed stay), and a snapshot keeps what the
  // search kept.
  std::map<std::string, torch::Tensor> scores() const override {
    torch::NoGradGuard ng;
    double lo = 0, hi = 0;
    for (const Site& s : sites_) {
      lo = std::min(lo, s.score.min().item<double>());
      hi = std::max(hi, s.score.max().item<double>());
    }
    std::map<std::string, torch::Tensor> out = SearchSites::scores();
    for (size_t i = 0; i < sites_.size(); ++i) {
      torch::Tensor& t = out.at(sites_[i].layer->name);
      t.add_(indicator_[i].detach().cpu().reshape(t.sizes()), hi - lo + 1);
    }
    return out;
  }
  arch::SiteOp dropped() const override { return arch::SiteOp::Poly; }
  std::map<std::string, torch::Tensor> checkpoint_tensors() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < sites_.size(); ++i) {
      const std::string& name = sites_[i].layer->name;
      out["score/" + name] = sites_[i].score;
      out["indicator/" + name] = indicator_[i];
      out["poly/" + name] = coef_[i];
    }
    return out;
  }
  std::map<std::string, torch::Tensor> snapshot_parameters() const override {
    std::map<std::string, torch::Tensor> out;
    for (size_t i = 0; i < sites_.size(); ++i) out[sites_[i].layer->name + ".poly"] = coef_[i].detach().cpu().clone();
    return out;
  }
  // Each channel's fit of relu on the activations of the first training
  // images (eval mode: the starting network's BatchNorm statistics).
  void initialise(nn::Net& net, const data::Dataset& train, torch::Device device) override {
    std::vector<ReluQuadraticFit> moments(sites_.size());
    net->set_site_activation([&](const arch::Layer& site, const torch::Tensor& x) {
      moments[index_.at(site.name)].add(x);
      return torch::relu(x);
    });
    data::LoaderOptions lo;
    lo.batch = 256;
    lo.train = false;
    const auto batches = data::make_batches(train, lo, device);
    torch::NoGradGuard ng;
    net->eval();
    batches->start_epoch(0);
    torch::Tensor x, y;
    for (int64_t seen = 0; seen < kCalibrationImages && batches->next(x, y); seen += x.size(0))
      net->forward(x.to(device));
    install(net);
    for (size_t i = 0; i < sites_.size(); ++i)
      if (!moments[i].empty()) coef_[i].copy_(moments[i].coefficients().to(device));
  }
  static constexpr int64_t kCalibrationImages = 2048;

 private:
  torch::Tensor activate(const Site& site, const torch::Tensor& x) const override {
    const size_t i = index_.at(site.layer->name);
    const torch::Tensor& k = coef_[i];
    const auto shape = std::vector<int64_t>{1, k.size(1), 1, 1};
    const torch::Tensor p = (k[0].view(shape) * x + k[1].view(shape)) * x + k[2].view(shape);
    const torch::Tensor m = indicator_[i] + site.score - site.score.detach();  // h forward, ds straight through
    return p + m * (torch::relu(x) - p);
  }
  void add_site(const Site& site, torch::Device device) override {
    const int64_t C = site.layer->out.c;
    indicator_.push_back(torch::ones_like(site.score).detach());
    coef_.push_back(torch::tensor({nn::kPolyInitA, nn::kPolyInitB, nn::kPolyInitC}, torch::kFloat)
                        .view({3, 1})
                        .repeat({1, C})
                        .to(device)
                        .requires_grad_(true));
  }

  // Keeps, of the flips `want` marks (per site, like the scores), those of
  // the lowest scores (highest: highest_first) up to `cap` elements, at
  // least one score; a channel-wise score counts as its channel's elements.
  void limit_flips(std::vector<torch::Tensor>& want, int64_t cap, bool highest_first) const {
    int64_t wanted = 0;
    for (size_t i = 0; i < sites_.size(); ++i) wanted += count_elements(sites_[i], want[i]);
    if (wanted <= cap) return;
    std::vector<torch::Tensor> keys, weights;
    std::vector<int64_t> sizes;
    const double none = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < sites_.size(); ++i) {
      const torch::Tensor s = sites_[i].score.detach().flatten();
      const torch::Tensor w = want[i].flatten();
      keys.push_back(torch::where(w, highest_first ? -s : s, torch::full_like(s, none)));
      weights.push_back(torch::full_like(s, static_cast<double>(sites_[i].elements_per_score)));
      sizes.push_back(s.numel());
    }
    const torch::Tensor key = torch::cat(keys);
    const auto [sorted, order] = key.sort(/*stable=*/true, 0, false);
    torch::Tensor taken = torch::cat(weights).index_select(0, order).cumsum(0).le(static_cast<double>(cap));
    taken.index_put_({0}, true);  // at least the first: a channel larger than the cap still moves
    const torch::Tensor keep = torch::zeros_like(key, torch::kBool).index_put_({order}, taken & sorted.isfinite());
    const auto parts = keep.split_with_sizes(sizes);
    for (size_t i = 0; i < sites_.size(); ++i) want[i] = parts[i].view_as(want[i]);
  }

  double band_;
  bool may_return_;  // a replaced element's indicator rises again past the band (AutoReP's loop)
  double flip_rate_;  // the most indicators a step flips each way, as a fraction of the live ReLUs (0: no limit)
  std::vector<torch::Tensor> indicator_, coef_;  // per site: float [1, C, H, W] of 0/1; [3, C]
};

}  // namespace

void ReluQuadraticFit::add(const torch::Tensor& in) {
  const torch::Tensor v = in.detach().to(torch::kFloat64).transpose(0, 1).reshape({in.size(1), -1});  // [C, n]
  const torch::Tensor r = torch::relu(v);
  const std::vector<torch::Tensor> px = {torch::ones_like(v), v, v * v, v * v * v, v * v * v * v};
  std::vector<torch::Tensor> sx, sxr;
  for (const auto& p : px) sx.push_back(p.sum(1));
  for (size_t k = 0; k < 3; ++k) sxr.push_back((px[k] * r).sum(1));
  const torch::Tensor a = torch::stack(sx), b = torch::stack(sxr);
  x_ = x_.defined() ? x_ + a : a;
  xr_ = xr_.defined() ? xr_ + b : b;
}

torch::Tensor ReluQuadraticFit::coefficients() const {
  const torch::Tensor S = x_.transpose(0, 1), T = xr_.transpose(0, 1);  // [C, 5], [C, 3]
  auto row = [&](int64_t k) { return torch::stack({S.select(1, k + 2), S.select(1, k + 1), S.select(1, k)}, 1); };
  const torch::Tensor A = torch::stack({row(2), row(1), row(0)}, 1);  // [C, 3, 3]: the normal equations
  const torch::Tensor rhs = torch::stack({T.select(1, 2), T.select(1, 1), T.select(1, 0)}, 1).unsqueeze(2);
  // A tiny ridge keeps a nearly degenerate channel solvable; its effect is ~1e-9 relative.
  const torch::Tensor ridge =
      torch::eye(3, torch::kFloat64) * (1e-9 * A.diagonal(0, 1, 2).sum(1).view({-1, 1, 1}) + 1e-12);
  const torch::Tensor coef = torch::linalg::solve(A + ridge, rhs, /*left=*/true).squeeze(2);  // [C, 3]
  const torch::Tensor mean = S.select(1, 1) / S.select(1, 0).clamp_min(1);
  const torch::Tensor var = S.select(1, 2) / S.select(1, 0).clamp_min(1) - mean * mean;
  const torch::Tensor ok = torch::isfinite(coef).all(1, true) & S.select(1, 0).ge(3).unsqueeze(1) &
                           var.gt(1e-12 * (1 + mean * mean)).unsqueeze(1);
  const torch::Tensor fallback =
      torch::tensor({nn::kPolyInitA, nn::kPolyInitB, nn::kPolyInitC}, torch::kFloat64).expand_as(coef);
  return torch::where(ok, coef, fallback).transpose(0, 1).to(torch::kFloat).contiguous();
}

std::unique_ptr<SearchSites> make_search_sites(const std::string& replace, double band, const std::string& granularity,
                                               const std::string& removed, double flip_rate) {
  if (removed != "stay" && removed != "may-return")
    throw std::invalid_argument("--removed '" + removed + "' is not accepted (accepted: stay, may-return)");
  if (granularity != "element" && granularity != "channel")
    throw std::invalid_argument("--granularity '" + granularity + "' is not accepted (accepted: element, channel)");
  const bool channelwise = granularity == "channel";
  if (replace == "identity") return std::make_unique<IdentitySites>(channelwise);
  if (replace == "poly") return std::make_unique<PolynomialSites>(band, channelwise, removed == "may-return", flip_rate);
  throw std::invalid_argument("--replace '" + replace + "' is not accepted (accepted: identity, poly)");
}

}  // namespace dr::train
