#pragma once
// The module of a ReLU site with polynomial elements (arch::SiteOp::Poly,
// AutoReP-style replacement): element by element, what the site's mask says,
//   ReLU        y = relu(x)
//   identity    y = x
//   polynomial  y = a_c*x^2 + b_c*x + c_c   (c: the element's channel)
// The coefficients are the module's parameter "poly", [3, C] (rows a, b, c):
// trained with the weights, saved in weights.pt as "<site>.poly", read by the
// private runtime's model at the torch edge. The mask itself is no parameter
// and no buffer, as for a MaskedReLU.
#include <torch/torch.h>

#include "arch/network.h"

namespace dr::nn {

// Coefficients a new site starts from: the least-squares fit of relu(x) by
// a*x^2 + b*x + c for x ~ N(0, 1) (a BatchNorm's output): a = c = 1/(2*sqrt(2*pi))
// ~ 0.1995, b = 1/2. A method may fit them to the measured activations instead.
constexpr double kPolyInitA = 0.19947114020071635, kPolyInitB = 0.5, kPolyInitC = 0.19947114020071635;

class PolySiteImpl : public torch::nn::Module {
 public:
  // `site`: a live ReLU layer with polynomial elements (arch::has_polynomials).
  explicit PolySiteImpl(const arch::Layer& site);

  // Not in place; differentiable in x and in the coefficients. Throws
  // std::invalid_argument naming the site when x's C x H x W does not fit
  // an element-wise mask (a channel-wise one fits any H x W).
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor poly;  // [3, C]: a, b, c per channel

 private:
  std::string name_;
  arch::Shape shape_;
  bool channelwise_ = false;
  torch::Tensor relu_, poly_elements_;  // bool [1, C, H, W] or [1, C, 1, 1]
};
TORCH_MODULE(PolySite);

}  // namespace dr::nn
