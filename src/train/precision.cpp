#include "train/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <algorithm>
#include <stdexcept>

#include "util/provenance.h"
#include "util/strings.h"

namespace dr::train {

// LibTorch 2.4 made autocast's switches per device type; 1.13 has one pair of
// functions per device.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DR_AUTOCAST_PER_DEVICE 1
#endif

namespace {

bool autocast_enabled(torch::DeviceType d) {
#ifdef DR_AUTOCAST_PER_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast(torch::DeviceType d, bool on) {
#ifdef DR_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_enabled(d, on);
#else
  if (d == torch::kCUDA)
    at::autocast::set_enabled(on);
  else
    at::autocast::set_cpu_enabled(on);
#endif
}

torch::ScalarType autocast_dtype(torch::DeviceType d) {
#ifdef DR_AUTOCAST_PER_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(torch::DeviceType d, torch::ScalarType t) {
#ifdef DR_AUTOCAST_PER_DEVICE
  at::autocast::set_autocast_dtype(d, t);
#else
  if (d == torch::kCUDA)
    at::autocast::set_autocast_gpu_dtype(t);
  else
    at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace

AutocastGuard::AutocastGuard(torch::DeviceType device, torch::ScalarType dtype)
    : device_(device), was_enabled_(autocast_enabled(device)), was_dtype_(autocast_dtype(device)) {
  set_autocast_dtype(device_, dtype);
  set_autocast(device_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  // Leaving the outermost autocast region frees its cache of cast weights
  // (Python's torch.autocast does the same).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(device_, was_enabled_);
  set_autocast_dtype(device_, was_dtype_);
}

LossScaler::LossScaler(double scale, int64_t growth_interval) : scale_(scale), growth_interval_(growth_interval) {}

bool LossScaler::unscale(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> finite;
  for (const auto& p : params) {
    torch::Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(1.0 / scale_);
    finite.push_back(torch::isfinite(g).all());
  }
  const bool ok = finite.empty() || torch::stack(finite).all().item<bool>();
  if (!ok) {
    scale_ *= 0.5;
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  if (++good_steps_ >= growth_interval_) scale_ *= 2.0, good_steps_ = 0;
  return true;
}

Precision::Precision(const std::string& name, torch::Device device) : name_(name), device_(device) {
  if (name != "fp32" && name != "bf16" && name != "fp16")
    throw std::invalid_argument("--precision '" + name + "' is not accepted (accepted: fp32, bf16, fp16)");
  if (name == "fp16" && !device.is_cuda())
    throw std::invalid_argument(
        "--precision fp16 is for CUDA devices (fp16 autocast on the CPU is slow or missing); "
        "accepted on the CPU: fp32, bf16");
  if (name == "fp16") scaler_ = std::make_unique<LossScaler>();
}

std::unique_ptr<AutocastGuard> Precision::autocast() const {
  if (name_ == "fp32") return nullptr;
  return std::make_unique<AutocastGuard>(device_.type(), name_ == "bf16" ? torch::kBFloat16 : torch::kHalf);
}

torch::Tensor Precision::for_backward(const torch::Tensor& loss) const {
  return scaler_ ? scaler_->scaled(loss) : loss;
}

bool Precision::unscale(const std::vector<torch::Tensor>& params) {
  return scaler_ ? scaler_->unscale(params) : true;
}

std::string Precision::warning() const {
  if (name_ != "bf16" || device_.is_cuda()) return "";
  const std::vector<std::string> flags = util::cpu_kernel_flags();
  for (const char* fast : {"avx512_bf16", "amx_bf16"})
    if (std::find(flags.begin(), flags.end(), fast) != flags.end()) return "";
  return "warning: this CPU (" + util::cpu_model() + ", " + (flags.empty() ? "flags unknown" : util::join(flags, " ")) +
         ") has neither AVX512_BF16 nor AMX: bf16 runs on oneDNN's fallback kernels, measured 22x slower than fp32 on "
         "an AVX2-only AMD EPYC (docs/performance.md); --precision fp32 is faster here";
}

}  // namespace dr::train
