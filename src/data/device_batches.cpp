#include "data/device_batches.h"

#include <algorithm>
#include <stdexcept>

#include "data/sampling.h"

namespace dr::data {

namespace {

// [B, L] indices reflect(i + shift) of 0..L-1 (mirrored first where `flip`):
// data/sampling.h's reflect() as tensor operations.
torch::Tensor reflected_indices(int64_t L, const torch::Tensor& shift, const torch::Tensor& flip) {
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(shift.device());
  torch::Tensor i = torch::arange(L, opts).unsqueeze(0);  // [1, L]
  if (flip.defined()) i = torch::where(flip.unsqueeze(1), (L - 1) - i, i);
  i = i + shift.unsqueeze(1);  // [B, L]
  if (L == 1) return torch::zeros_like(i);
  const int64_t period = 2 * L - 2;
  i = torch::remainder(i, period);  // in [0, period) for a positive period
  return torch::where(i >= L, period - i, i);
}

}  // namespace

DeviceBatches::DeviceBatches(const Dataset& data, LoaderOptions opt, torch::Device device)
    : opt_(opt), device_(device) {
  const Dataset d = checked_for_batches(data, opt_);
  images_ = d.images.to(device_);
  labels_ = d.labels.to(device_);
  const std::vector<float> table = normalisation_table(d.mean, d.std);
  table_ = torch::tensor(table, torch::kFloat32).to(device_);
  channel_offset_ =
      (torch::arange(d.channels(), torch::kInt64) * 256).view({1, d.channels(), 1, 1}).to(device_);
  n_ = d.size();
  batches_ = batches_in(n_, opt_);
}

void DeviceBatches::start_epoch(int64_t epoch) {
  const std::vector<int64_t> order = epoch_order(n_, opt_.train, opt_.seed, epoch);
  order_ = torch::tensor(order, torch::kInt64).to(device_);
  const bool augment = opt_.train && (opt_.pad > 0 || opt_.flip);
  crops_ = torch::Tensor();
  if (augment) {
    torch::Tensor crops = torch::empty({n_, 3}, torch::kInt64);
    int64_t* c = crops.data_ptr<int64_t>();
    for (int64_t p = 0; p < n_; ++p) {
      const Crop crop = crop_of(opt_.seed, epoch, p / opt_.batch, p % opt_.batch, opt_.pad, opt_.flip);
      c[3 * p] = crop.dx, c[3 * p + 1] = crop.dy, c[3 * p + 2] = crop.flip;
    }
    crops_ = crops.to(device_);
  }
  epoch_ = epoch;
  next_ = 0;
  started_ = true;
}

bool DeviceBatches::next(torch::Tensor& images, torch::Tensor& labels) {
  if (!started_) start_epoch(0);
  if (next_ >= batches_) return false;
  const int64_t k = next_++;
  const int64_t g0 = k * opt_.batch, gsize = std::min(opt_.batch, n_ - g0);
  const int64_t s0 = opt_.rank * gsize / opt_.world, s1 = (opt_.rank + 1) * gsize / opt_.world;
  const int64_t B = s1 - s0;
  const torch::Tensor idx = order_.narrow(0, g0 + s0, B);
  torch::Tensor x = images_.index_select(0, idx);  // uint8 [B, C, H, W]
  if (crops_.defined()) {
    const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
    const torch::Tensor crop = crops_.narrow(0, g0 + s0, B);
    const torch::Tensor xs = reflected_indices(W, crop.select(1, 0), crop.select(1, 2).to(torch::kBool));
    const torch::Tensor ys = reflected_indices(H, crop.select(1, 1), torch::Tensor());
    x = x.gather(3, xs.view({B, 1, 1, W}).expand({B, C, H, W}));
    x = x.gather(2, ys.view({B, 1, H, 1}).expand({B, C, H, W}));
  }
  // The host loader's table, looked up: the same floats bit for bit (an
  // arithmetic (x/255 - mean)/std may round differently per kernel).
  images = table_.take(x.to(torch::kInt64) + channel_offset_);
  labels = labels_.index_select(0, idx);
  return true;
}

int64_t DeviceBatches::skip_batches(int64_t n) {
  if (!started_) start_epoch(0);
  const int64_t m = std::clamp<int64_t>(n, 0, batches_ - next_);
  next_ += m;
  return m;
}

std::string batches_kind(const Dataset& data, const std::string& where) {
  if (where == "device" || where == "host") return where;
  if (where != "auto")
    throw std::invalid_argument("batches made on '" + where + "' is not accepted (accepted: auto, device, host)");
  const int64_t bytes = data.images.defined() ? data.images.numel() * data.images.element_size() : 0;
  return bytes <= kDeviceDataLimit ? "device" : "host";
}

std::unique_ptr<Batches> make_batches(const Dataset& data, const LoaderOptions& opt, torch::Device device,
                                      const std::string& where) {
  if (batches_kind(data, where) == "device") return std::make_unique<DeviceBatches>(data, opt, device);
  return std::make_unique<BatchLoader>(data, opt);
}

}  // namespace dr::data
