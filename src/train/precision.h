#pragma once
// Mixed precision for training (--precision): autocast of the forward pass
// to bf16 or fp16 on the training device, and dynamic loss scaling for fp16
// (whose range is too small for small gradients). Weights, optimiser state
// and BatchNorm's running statistics stay fp32; the loss and KD's softmax are
// computed in fp32 from the network's outputs (Micikevicius et al., "Mixed
// Precision Training", ICLR 2018, section 3).
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace dr::train {

// The autocast state of one thread for one device type: on for the guard's
// life, the previous state restored after (LibTorch 1.13 and 2.x).
class AutocastGuard {
 public:
  AutocastGuard(torch::DeviceType device, torch::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  torch::DeviceType device_;
  bool was_enabled_;
  torch::ScalarType was_dtype_;
};

// fp16's dynamic loss scaling, as PyTorch's GradScaler: the loss is
// multiplied by `scale` before the backward pass, the gradients divided by it
// after; a step whose gradients are not finite is skipped and the scale
// halved, and after `growth_interval` finite steps in a row it doubles.
class LossScaler {
 public:
  explicit LossScaler(double scale = 65536.0, int64_t growth_interval = 2000);
  torch::Tensor scaled(const torch::Tensor& loss) const { return loss * scale_; }
  // Divides every defined gradient of `params` by the scale; false (and the
  // scale halved) when one of them is not finite: skip this step. One host
  // synchronisation, as GradScaler's step.
  bool unscale(const std::vector<torch::Tensor>& params);
  double scale() const { return scale_; }
  int64_t skipped() const { return skipped_; }

 private:
  double scale_;
  int64_t growth_interval_, good_steps_ = 0, skipped_ = 0;
};

// A run's --precision on its device: fp32 (nothing), bf16 (autocast) or
// fp16 (autocast + loss scaling). Throws std::invalid_argument for another
// name, and for fp16 on the CPU (accepted there: fp32, bf16).
class Precision {
 public:
  Precision(const std::string& name, torch::Device device);
  const std::string& name() const { return name_; }
  // Autocast for the forward pass (null for fp32); the backward pass runs
  // outside it, as autocast wants.
  std::unique_ptr<AutocastGuard> autocast() const;
  // The loss to run backward on (scaled for fp16).
  torch::Tensor for_backward(const torch::Tensor& loss) const;
  // After the backward pass (and any gradient averaging): false when the
  // optimiser step must be skipped (fp16 overflow).
  bool unscale(const std::vector<torch::Tensor>& params);
  const LossScaler* scaler() const { return scaler_.get(); }
  // A warning for the user ("" when none): bf16 on a CPU without
  // AVX512_BF16 or AMX runs on oneDNN's slow fallback kernels.
  std::string warning() const;

 private:
  std::string name_;
  torch::Device device_;
  std::unique_ptr<LossScaler> scaler_;
};

}  // namespace dr::train
