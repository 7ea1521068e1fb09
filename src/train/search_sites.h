#pragma once
// What a mask search learns at the live ReLU sites of its network, one class
// per way of replacing a ReLU (the search itself, snl.h, is the same for all):
//
//   identity (SNL, Cho et al., ICML 2022): a mask m per element, from 1,
//     y = m * relu(x) + (1 - m) * x;  m > threshold counts as a live ReLU.
//   polynomial (AutoReP-style, Peng et al., ICCV 2023): a score s per element,
//     from 1, and an indicator h in {0, 1} with hysteresis (h falls to 0 when
//     s < threshold - band, rises to 1 when s > threshold + band, else keeps
//     its value; with --removed stay, h never rises again once it fell),
//     y = h * relu(x) + (1 - h) * p_c(x) with per-channel
//     p_c(x) = a_c x^2 + b_c x + c_c; the gradient reaches s straight through
//     (dy/ds = relu(x) - p_c(x)) and the coefficients through (1 - h).
//     h = 1 counts as a live ReLU. deepreduce paces the loop: a step flips
//     at most a fraction of the live ReLUs each way (lowest scores falling
//     first), so a band of scores pulled alike crosses over many steps, not
//     in one. The coefficients start from each channel's
//     least-squares fit of relu on the activations of training images
//     (AutoReP's distribution-aware initialisation), then train with the rest.
//
// Either way the choice may be per channel instead (--granularity channel):
// one score for a channel's H x W elements, and the snapshots keep whole
// channels (channel-wise masks).
//
// The masks, scores and coefficients are not parameters of the network
// (state_dict and weights.pt stay its own during the search): the search
// hands them to Adam, the L1 term, the checkpoint and the snapshots.
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "arch/network.h"
#include "data/dataset.h"
#include "nn/net.h"

namespace dr::train {

class SearchSites {
 public:
  virtual ~SearchSites() = default;
  // One per plain ReLU site of `net` (live, no fixed mask), through its site
  // activation. Throws std::invalid_argument naming a site that already has a
  // fixed mask.
  void attach(nn::Net& net, torch::Device device);
  // What the optimiser steps besides the network's parameters.
  virtual std::vector<torch::Tensor> parameters() const;
  // sum |score| over every element: the L1 term the lasso weighs.
  torch::Tensor l1() const;
  // Elements that count as live ReLUs now.
  virtual int64_t live(double threshold) const = 0;
  // Before each training step (the scores as the last step left them).
  virtual void before_step(double /*threshold*/) {}
  // Per site, float scores: [C, H, W], or [C] for a channel-wise search; a
  // snapshot keeps the largest as ReLUs (train::keep_largest).
  virtual std::map<std::string, torch::Tensor> scores() const;
  // What a snapshot makes of the elements it does not keep.
  virtual arch::SiteOp dropped() const = 0;
  // The tensors of the checkpoint ("mask/<site>", ...), loaded in place on resume.
  virtual std::map<std::string, torch::Tensor> checkpoint_tensors() const;
  // Network parameters a snapshot's weights.pt adds ("<site>.poly"), none for SNL.
  virtual std::map<std::string, torch::Tensor> snapshot_parameters() const { return {}; }
  // Before the first epoch of a new search (not on resume).
  virtual void initialise(nn::Net& /*net*/, const data::Dataset& /*train*/, torch::Device /*device*/) {}

 protected:
  struct Site {
    const arch::Layer* layer;
    torch::Tensor score;  // float [1, C, H, W] ([1, C, 1, 1] channel-wise), requires grad: SNL's m, or s
    int64_t elements_per_score = 1;  // channel-wise: the channel's H x W
  };
  explicit SearchSites(bool channelwise) : channelwise_(channelwise) {}
  // Elements whose score (or indicator) in `t` is set: each counts for its elements.
  static int64_t count_elements(const Site& s, const torch::Tensor& set);
  virtual torch::Tensor activate(const Site& site, const torch::Tensor& x) const = 0;
  // The sites' activations as the network's site activation (nn::NetImpl::set_site_activation).
  void install(nn::Net& net);
  virtual void add_site(const Site& site, torch::Device device) = 0;
  std::vector<Site> sites_;  // forward order
  std::map<std::string, size_t> index_;
  bool channelwise_;  // a score per channel instead of per element
};

// Per channel, the least-squares fit of relu(x) by a*x^2 + b*x + c on the
// activations added (AutoReP's distribution-aware initialisation), from
// running sums of x^k (k = 0..4) and x^k relu(x) (k = 0..2) in double.
class ReluQuadraticFit {
 public:
  void add(const torch::Tensor& x);  // [N, C, H, W] or [N, C]
  // [3, C] float (a, b, c): the fit; the N(0, 1) fit (nn/poly_site.h) for a
  // channel whose values do not determine one (fewer than 3, or all alike).
  torch::Tensor coefficients() const;
  bool empty() const { return !x_.defined(); }

 private:
  torch::Tensor x_, xr_;  // [5, C], [3, C]
};

// "identity" (SNL) or "poly"; `band`: the polynomial indicator's hysteresis;
// `granularity`: "element" (a score per element) or "channel" (a score per
// channel, whose elements are all ReLUs or all replaced); `removed` (poly):
// "stay" (an element replaced stays replaced) or "may-return" (AutoReP's
// loop: its indicator rises again when its score passes the band's top);
// `flip_rate` (poly): the most indicators one step flips each way, as a
// fraction of the live ReLUs (0: no limit, AutoReP's loop as published).
std::unique_ptr<SearchSites> make_search_sites(const std::string& replace, double band,
                                               const std::string& granularity = "element",
                                               const std::string& removed = "may-return", double flip_rate = 0);

}  // namespace dr::train
