#pragma once
// The module of a masked ReLU site (arch/relu_site.h: arch::ReluKind::Masked):
// y = relu(x) on the kept elements, y = x elsewhere, computed as
// y = max(x, floor) with floor 0 on kept elements and -inf elsewhere: one
// pass over the activation, in place, like ReLU(inplace) (docs/performance.md).
//
// The mask is no parameter and no buffer: named_buffers(), state_dict and
// weights.pt stay exactly those of the unmasked network. It lives on the CPU;
// other devices and dtypes take a torch::where path.

#include <torch/torch.h>

#include "arch/network.h"

namespace dr::nn {

// A masked site's ops (arch::SiteOp values), uint8 [1, C, H, W] (element-wise)
// or [1, C, 1, 1] (channel-wise), copied. Throws std::invalid_argument naming
// the site when it has no mask or one of the wrong size.
torch::Tensor site_ops(const arch::Layer& site);
// Throws std::invalid_argument naming the site when x ([N, C, H, W] or [N, C])
// does not fit it: C channels, and H x W unless the mask is channel-wise.
void check_site_input(const std::string& name, const arch::Shape& shape, bool channelwise, const torch::Tensor& x);

class MaskedReLUImpl : public torch::nn::Module {
 public:
  // `site`: a live ReLU layer whose mask arch::relu_kind() classified as Masked.
  explicit MaskedReLUImpl(const arch::Layer& site);

  // Overwrites x (like ReLU(inplace)) when it is a dense CPU float tensor,
  // NCHW or channels-last; mkldnn tensors round-trip through a dense one.
  // Differentiable: d y / d x is 1 on masked-out elements, relu's elsewhere.
  // Throws std::invalid_argument naming the site when x's C x H x W does not
  // fit an element-wise mask (a channel-wise one fits any H x W).
  torch::Tensor forward(torch::Tensor x);

  // The kept elements, bool: [C, H, W] (element-wise) or [C] (channel-wise).
  torch::Tensor keep() const;
  bool channelwise() const { return channelwise_; }

 private:
  std::string name_;
  arch::Shape shape_;
  bool channelwise_ = false;
  torch::Tensor keep_;        // bool [1, C, H, W] or [1, C, 1, 1]: the torch::where path
  // float, 0 kept / -inf masked out: one image of the site's C x H x W, in
  // NCHW and in NHWC element order (channel-wise masks expanded).
  torch::Tensor floor_nchw_, floor_nhwc_;
};
TORCH_MODULE(MaskedReLU);

}  // namespace dr::nn
