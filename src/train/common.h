#pragma once
// What the trainer and the SNL mask search share: timing, the KD teacher,
// the test pass, the progress line's clock format.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <limits>
#include <memory>
#include <string>

#include "arch/datasets.h"
#include "data/dataset.h"
#include "nn/net.h"
#include "train/config.h"

namespace dr::train {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);
// "1:02:03".
std::string hms(double seconds);

arch::InputSpec input_of(const data::Dataset& d);

// The teacher of a KD run: its network (with its masks) in eval mode with
// its final weights, checked against the student's input.
nn::Net load_teacher(const std::string& dir, const arch::InputSpec& student_in, torch::Device dev);

// The augmenting training batches of `cfg` (batch, seed, workers, crop
// padding as resolved, flip) made where cfg.data_path says, for `dev`;
// data-parallel: this rank's slices.
std::unique_ptr<data::Batches> train_batches(const TrainConfig& cfg, const data::Dataset& d, torch::Device dev,
                                             int rank = 0, int world = 1);

// A loss read back from JSON: a non-finite one (a network whose logits
// overflow on some image) is written as null, and reads back as NaN.
inline double loss_from_json(const nlohmann::json& v) {
  return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
}

struct EpochStats {
  double loss = 0, correct = 0, images = 0;
};
// Summed cross-entropy and correct predictions over `d` in eval mode (fp32),
// its batches made where `data_path` says (data/device_batches.h).
EpochStats run_eval(nn::Net& net, const data::Dataset& d, torch::Device dev, int workers,
                    const std::string& data_path = "auto");

}  // namespace dr::train
