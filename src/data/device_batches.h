#pragma once
// The device-resident batch source: the whole split held once on the
// training device as uint8 [N, C, H, W] (CIFAR-100's training split is 150 MB,
// TinyImageNet's 1.2 GB), each batch gathered, cropped, flipped and
// normalised there by a few batched tensor operations; no per-image host work
// on the hot path. The epoch's order and every image's crop and flip are
// drawn on the host once per epoch (O(N) integers, data/sampling.h), so the
// batches are those of BatchLoader for the same options, bit for bit, on the
// CPU and (same integers, same exact gathers and table look-ups) on CUDA.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "data/dataset.h"

namespace dr::data {

class DeviceBatches : public Batches {
 public:
  // `opt.workers` and `opt.prefetch` are unused (the work is a few batched
  // operations on `device`). Throws std::invalid_argument as BatchLoader.
  DeviceBatches(const Dataset& data, LoaderOptions opt, torch::Device device);

  void start_epoch(int64_t epoch) override;
  bool next(torch::Tensor& images, torch::Tensor& labels) override;
  int64_t batches_per_epoch() const override { return batches_; }
  int64_t skip_batches(int64_t n) override;

 private:
  LoaderOptions opt_;
  torch::Device device_;
  torch::Tensor images_;  // uint8 [N, C, H, W] on device_
  torch::Tensor labels_;  // int64 [N] on device_
  torch::Tensor table_;   // float [C * 256] (normalisation_table) on device_
  torch::Tensor channel_offset_;  // int64 [1, C, 1, 1]: c * 256
  torch::Tensor order_;   // int64 [N]: this epoch's order, on device_
  torch::Tensor crops_;   // int64 [N, 3]: (dx, dy, flip) per position of the epoch, on device_
  int64_t n_ = 0, batches_ = 0, epoch_ = 0, next_ = 0;
  bool started_ = false;
};

// Where batches are made: "device" (DeviceBatches on `device`), "host"
// (BatchLoader; batches then copied to the device by the caller) or "auto":
// device while the split's uint8 images are at most kDeviceDataLimit bytes
// (every built-in dataset; the line leaves the GPU's memory to the network),
// host above. Throws std::invalid_argument for another `where`.
constexpr int64_t kDeviceDataLimit = int64_t{4} << 30;
std::unique_ptr<Batches> make_batches(const Dataset& data, const LoaderOptions& opt, torch::Device device,
                                      const std::string& where = "auto");
// The source make_batches picks: "device" or "host".
std::string batches_kind(const Dataset& data, const std::string& where);

}  // namespace dr::data
