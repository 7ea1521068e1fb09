#pragma once
// A LibTorch network built from an arch description. Every layer is a
// registered module whose path is the layer's name (e.g. "layer2.0.relu1"),
// so named_modules()/named_parameters() match the description and Python
// PyTorch can load the weights by name. A ReLU the spec removed is not a
// module at all and costs nothing at run time.
//
// A ReLU site with a pixel-level mask (arch::Layer::mask) computes, element
// by element, its arch::SiteOp (ReLU, identity, polynomial) in every
// execution path below (arch/relu_site.h): a mask of identities only makes
// no module (like a removed ReLU), one of ReLUs only a plain ReLU, one of
// ReLUs and identities a MaskedReLU (nn/masked_relu.h) whose mask is no
// buffer (state_dict names unchanged), one with polynomial elements a
// PolySite (nn/poly_site.h) whose coefficients are the parameter
// "<site>.poly".
//
// Execution (docs/performance.md): on the CPU activations and conv weights
// are channels-last (NHWC, oneDNN's fast layout); inference (eval mode with
// grad disabled) runs a fused plan: BatchNorm folded into the preceding
// convolution, the batch in cache-sized chunks, and on the CPU the
// convolutional part as one oneDNN program (src/nn/onednn.h: ReLUs and
// residual adds fused, Winograd 3x3 convolutions) or, without oneDNN's
// headers, LibTorch's oneDNN tensors. The fused plan is rebuilt whenever a
// parameter or buffer changes; the ReLU observer sees the same ReLU outputs
// either way (for the whole batch, on the dense fused path).

#include <torch/torch.h>

#include <functional>

#include "arch/spec.h"
#include "nn/masked_relu.h"
#include "nn/poly_site.h"

namespace dr::nn {

namespace onednn {
class Program;
}

// The defaults can be overridden for every Net of a process with the
// environment variable DEEPREDUCE_EXEC, a comma-separated list of plain
// (all off), nocl, nofuse, nomkldnn, noprogram, nowinograd, nochunk: for
// comparisons and debugging.
struct ExecOptions {
  // CPU: NHWC activations and conv weights. The parameters keep their names,
  // shapes and values (weights.pt is written contiguous).
  bool channels_last = true;
  // Eval mode + no grad: BatchNorm folded into the preceding convolution.
  bool fuse_inference = true;
  // Eval mode + no grad on CPU float32, with fuse_inference: oneDNN blocked
  // tensors end to end, conv weights reordered once (not at every call).
  bool mkldnn_inference = true;
  // With mkldnn_inference, when deepreduce was built with oneDNN's headers
  // (libdnnl-dev): the convolutional part runs as one oneDNN program
  // (src/nn/onednn.h) with ReLUs and residual adds fused into the convs.
  bool onednn_program = true;
  // In that program, Winograd for 3x3 stride-1 convolutions (output >= 4x4).
  bool winograd = true;
  // Fused inference runs the batch in chunks whose largest activation is at
  // most this many bytes (the chunk's activations stay in cache from layer to
  // layer). 0: the whole batch at once. Not while a ReLU observer is set.
  int64_t inference_chunk_bytes = 8 << 20;
};

// glibc serves blocks over 32 MiB with fresh mmap()s: every training step
// then page-faults its large activations in again (~20% of a ResNet18
// training step on a 2-core machine). Once per process this keeps such blocks in the heap
// (M_MMAP_MAX 0, M_TRIM_THRESHOLD 1 GiB) for reuse. NetImpl's constructor
// calls it; DEEPREDUCE_MALLOC=default in the environment leaves malloc alone.
// Returns whether the tuning is in effect.
bool tune_malloc();

// The convolution of layer `l` (stride, padding, groups) on x, as every
// training and unfused path of NetImpl computes it (net.cpp says why a
// strided 1x1 one may subsample first).
torch::Tensor conv2d(const arch::Layer& l, const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias);

// ExecOptions{} adjusted by DEEPREDUCE_EXEC (what a new Net starts with).
// Throws std::invalid_argument on an unknown item.
ExecOptions default_exec_options();

class NetImpl : public torch::nn::Module {
 public:
  explicit NetImpl(arch::Network desc);
  torch::Tensor forward(torch::Tensor x);
  // Training mode drops the fused inference plan (and the oneDNN program's
  // weights): optimizers (LibTorch's SGD) update parameters through .data(),
  // which leaves the version counters the plan is keyed on as they were, so
  // only a network whose BatchNorm statistics moved would otherwise rebuild
  // it.
  void train(bool on = true) override;

  const arch::Network& desc() const { return desc_; }

  // Called after every live ReLU with its name and output (for a masked site
  // the masked output; a site whose mask keeps nothing is no ReLU): a forward hook
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

  // A training method's own activation at the plain ReLU sites (live, no
  // fixed mask): f(site, x) replaces relu(x) there, e.g. SNL's learnable
  // mask y = x + m * relu(-x) (train/snl.cpp). The method owns its state
  // (masks, coefficients): state_dict and weights.pt stay the network's.
  // While set, forward() takes the unfused path in every mode; null restores
  // the ReLUs.
  using SiteActivation = std::function<torch::Tensor(const arch::Layer& site, const torch::Tensor& x)>;
  void set_site_activation(SiteActivation f) { site_activation_ = std::move(f); }

  void set_exec_options(const ExecOptions& o);
  const ExecOptions& exec_options() const { return exec_; }

  // Re-initialises the parameters (call before training, under the run's
  // seed). `scheme`: "torch" keeps LibTorch's defaults (Kaiming-uniform with
  // a = sqrt(5), what the PyTorch CIFAR codes of the paper's peers get);
  // "kaiming" draws conv weights He-normal (fan_out, ReLU gain) as
  // torchvision's ResNets do. BatchNorm starts at weight 1, bias 0 either way.
  // `zero_residual`: the last BatchNorm of every residual body starts at
  // weight 0, so each block starts as its shortcut (Goyal et al. 2017).
  // Throws std::invalid_argument on an unknown scheme.
  void init_parameters(const std::string& scheme, bool zero_residual);

 private:
  struct Step {
    const arch::Layer* layer = nullptr;
    torch::nn::Conv2d conv{nullptr};
    torch::nn::BatchNorm2d bn{nullptr};
    torch::nn::Linear fc{nullptr};
    torch::nn::ReLU relu{nullptr};
    MaskedReLU masked{nullptr};  // a masked site of ReLUs and identities (relu is null then)
    PolySite poly{nullptr};      // a masked site with polynomial elements (relu and masked are null then)
    // Fused inference plan: a conv with the following BatchNorm folded in
    // (weight, bias; `packed`: the oneDNN copies), and a BatchNorm that was
    // folded away.
    torch::Tensor fused_w, fused_b, packed_w, packed_b;
    bool folded = false;
  };
  struct BlockSteps {
    bool residual = false;
    std::vector<Step> body, shortcut, post;
  };
  torch::Tensor run(std::vector<Step>& steps, torch::Tensor x);
  torch::Tensor run_fused(std::vector<Step>& steps, torch::Tensor x, bool mkldnn);
  torch::Tensor forward_fused(torch::Tensor x, bool mkldnn, bool program);
  bool ensure_program();
  torch::Tensor synced_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x);
  Step make_step(const arch::Layer& layer);
  void apply_memory_format();
  // Builds the fused plan if missing or stale; false if it cannot be used.
  bool prepare_fused(bool mkldnn);
  std::vector<std::pair<const void*, int64_t>> state_key();

  arch::Network desc_;
  std::vector<BlockSteps> blocks_;
  std::map<std::string, std::shared_ptr<torch::nn::Module>> containers_;
  ReluObserver relu_observer_;
  SiteActivation site_activation_;
  AllReduceSum bn_sync_;
  ExecOptions exec_;
  // The parameters/buffers (address, version) the fused plan was built from.
  std::vector<std::pair<const void*, int64_t>> fused_key_;
  bool fused_mkldnn_ = false, fused_ok_ = false;
  // The oneDNN program (null: not built with oneDNN, or nothing covered) and
  // the fused plan its weights came from.
  std::shared_ptr<onednn::Program> program_;
  bool program_tried_ = false;
  std::vector<std::pair<const void*, int64_t>> program_key_;
};
TORCH_MODULE(Net);

// Builds the network for a model spec on an input. Throws arch::SpecError.
Net build(const std::string& spec, const arch::InputSpec& input);

}  // namespace dr::nn
