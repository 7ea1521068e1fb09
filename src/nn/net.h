#pragma once
// A LibTorch network built from an arch description. Every layer is a
// registered module whose path is the layer's name (e.g. "layer2.0.relu1"),
// so named_modules()/named_parameters() match the description and Python
// PyTorch can load the weights by name. A ReLU the spec removed is not a
// module at all and costs nothing at run time.

#include <torch/torch.h>

#include <functional>

#include "arch/spec.h"

namespace dr::nn {

class NetImpl : public torch::nn::Module {
 public:
  explicit NetImpl(arch::Network desc);
  torch::Tensor forward(torch::Tensor x);

  const arch::Network& desc() const { return desc_; }

  // Called after every live ReLU with its name and output: a forward hook
  // (LibTorch has none) for counting what passes through the ReLUs.
  using ReluObserver = std::function<void(const std::string& name, const torch::Tensor& out)>;
  void set_relu_observer(ReluObserver f) { relu_observer_ = std::move(f); }

  // Data-parallel BatchNorm. `f` replaces a tensor, in place, by its
  // elementwise sum over every rank (an all-reduce). When set, BatchNorm
  // layers in training mode normalise with the mean and variance of the
  // global batch (every rank's part), update their running statistics with
  // them as one process would, and back-propagate exactly through them:
  // data-parallel training then matches one process with the same global
  // batch. Every rank must run the same forward and backward passes.
  // Eval mode and a null `f` use the ordinary per-process BatchNorm.
  using AllReduceSum = std::function<void(torch::Tensor& t)>;
  void set_batch_norm_sync(AllReduceSum f) { bn_sync_ = std::move(f); }

 private:
  struct Step {
    const arch::Layer* layer = nullptr;
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    torch::nn::Linear fc{nullptr};
    torch::nn::ReLU relu{nullptr};
  };
  struct BlockSteps {
    bool residual = false;
    std::vector<Step> body, shortcut, post;
  };
  torch::Tensor run(std::vector<Step>& steps, torch::Tensor x);
  torch::Tensor synced_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);
  Step make_step(const arch::Layer& layer);

  arch::Network desc_;
  std::vector<BlockSteps> blocks_;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> containers_;
  ReluObserver relu_observer_;
  AllReduceSum bn_sync_;
};
TORCH_MODULE(Net);

// Builds the network for a model spec on an input. Throws arch::SpecError.
Net build(const std::string& spec, const arch::InputSpec& input);

}  // namespace dr::nn
