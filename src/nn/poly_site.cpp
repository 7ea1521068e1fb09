#include "nn/poly_site.h"

#include <stdexcept>

#include "nn/masked_relu.h"

namespace dr::nn {

PolySiteImpl::PolySiteImpl(const arch::Layer& site)
    : name_(site.name), shape_(site.out), channelwise_(site.mask && site.mask->channelwise) {
  const torch::Tensor op = site_ops(site);
  const int64_t C = shape_.c;
  relu_ = op.eq(static_cast<int>(arch::SiteOp::Relu));
  poly_elements_ = op.eq(static_cast<int>(arch::SiteOp::Poly));
  poly = register_parameter(
      "poly", torch::tensor({kPolyInitA, kPolyInitB, kPolyInitC}, torch::kFloat).view({3, 1}).repeat({1, C}));
}

torch::Tensor PolySiteImpl::forward(const torch::Tensor& x) {
  check_site_input(name_, shape_, channelwise_, x);
  const torch::Tensor in = x.is_mkldnn() ? x.to_dense() : x;  // inference only: no autograd on mkldnn
  const auto shape = x.dim() == 4 ? std::vector<int64_t>{1, shape_.c, 1, 1} : std::vector<int64_t>{1, shape_.c};
  const torch::Tensor k = poly.to(in.scalar_type());
  const torch::Tensor a = k[0].view(shape), b = k[1].view(shape), c = k[2].view(shape);
  torch::Tensor relu = relu_.to(in.device()), polys = poly_elements_.to(in.device());
  if (x.dim() == 2) relu = relu.flatten(1), polys = polys.flatten(1);
  const torch::Tensor y = torch::where(relu, torch::relu(in), torch::where(polys, (a * in + b) * in + c, in));
  return x.is_mkldnn() ? y.to_mkldnn() : y;
}

}  // namespace dr::nn
