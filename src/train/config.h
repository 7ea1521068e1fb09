#pragma once
// The resolved settings of one training run: written to <run>/config.json,
// enough to rerun or resume it.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dr::train {

// The accepted ranges of the settings (TrainConfig::validate): generous for
// every real run, small enough that no later arithmetic overflows.
constexpr int64_t kMaxEpochs = 100000;
constexpr int64_t kMaxBatch = 65536;
constexpr int64_t kMaxLimit = int64_t(1) << 40;
constexpr int64_t kMaxPad = 64;      // reflect padding of the random crop
constexpr int64_t kMaxWorkers = 64;  // data-loading threads

// Refuse (std::invalid_argument naming `option`, the range and the value) a
// number that is not finite or lies outside [lo, hi] (open at lo or hi when
// asked), and an integer outside lo..hi: the one check of every numeric setting.
void check_number(const std::string& option, double v, double lo, double hi, bool lo_open = false,
                  bool hi_open = false);
void check_integer(const std::string& option, int64_t v, int64_t lo, int64_t hi);
// Refuses a value that is not one of `accepted`, naming them.
void check_choice(const std::string& option, const std::string& v, const std::vector<std::string>& accepted);

// The cores this process may run on (its CPU affinity).
int max_threads();
// Refuses (std::invalid_argument naming `option`) a thread count outside
// 0..max_threads() (0 = every core): more threads than cores only slow down.
void check_threads(const char* option, int64_t threads);

// Every field has its row in the settings table (train/settings.h), which
// makes config.json, the checks and the training command line.
struct TrainConfig {
  std::string model;            // model spec, e.g. resnet18:cull=S1:thin
  std::string data;             // NAME[:PATH], see data::load_dataset
  std::string out;              // run directory
  int64_t epochs = 200;
  int64_t batch = 128;
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = true;
  double wd = 5e-4;
  std::string schedule = "step";  // step: lr x0.1 at 50% and 75% of training; cosine
  double warmup = 0;              // epochs (fractional) of linear warm-up from 0 to the schedule's lr
  double clip_grad = 0;           // the gradients' global L2 norm is clipped to this before each step (0: off)
  uint64_t seed = 0;
  int threads = 0;                // 0: every core
  std::string device = "auto";    // cpu, cuda, auto
  int64_t limit = 0;              // 0: all images; N: the first N train and test images
  int workers = 2;                // data-loading threads (the host data path)
  // Where batches are made (data/device_batches.h): device (the split held on
  // the training device, batched operations), host (per-image worker
  // threads) or auto (device up to 4 GiB of images). The batches are the
  // same either way, so it is not part of the result's settings.
  std::string data_path = "auto";
  // Arithmetic of the forward and backward passes (train/precision.h): fp32,
  // bf16 or fp16 autocast. Weights, optimiser state, BatchNorm statistics and
  // the loss stay fp32.
  std::string precision = "fp32";
  // Augmentation: reflect pad for the random crop (0: no crop). -1: by image
  // size, 4 for 32x32 and larger (the paper's CIFAR recipe), 2 for smaller
  // images (Fashion-MNIST's 28x28: 0.865 vs 0.845 test accuracy after one
  // epoch, mean of 3 seeds, docs/experiments.md).
  int pad = -1;
  bool flip = true;               // augmentation: random horizontal flip
  // torch or kaiming (torchvision's ResNet init), see nn::NetImpl::init_parameters.
  std::string weight_init = "kaiming";
  bool zero_init_residual = false;    // last BN of each residual body starts at 0
  std::string teacher;            // run directory of a finished teacher ("" = no KD)
  double kd_T = 4.0;
  // Weight of the distillation term. 1.0 made culled ResNets (whole stages
  // without ReLUs) diverge at lr 0.1 on Fashion-MNIST; 0.5 trains them.
  double kd_lambda = 0.5;
  std::string init;               // "" (random) or "teacher": start from the teacher's weights
  // The network has pixel-level ReLU masks (SNL): masks.pt in the run
  // directory, which a new run copies from masks_from.
  bool masked = false;
  std::string masks_from;  // not saved: the masks.pt a new run installs ("" = none)
  // Start from these weights of the same network (an SNL search snapshot;
  // an absolute path); "" = none.
  std::string init_weights;

  nlohmann::json to_json() const;
  // Throws std::runtime_error naming `source` (the file it came from) and the
  // field on a missing or mistyped field.
  static TrainConfig from_json(const nlohmann::json& j, const std::string& source = "training config");
  // The settings that decide the result (to_json without out, threads,
  // workers, device and data_path, which change how fast a run goes, not
  // where it ends).
  nlohmann::json result_settings() const;
  // The crop padding this config gives for images `height` pixels high.
  int pad_for(int64_t height) const { return pad >= 0 ? pad : (height >= 32 ? 4 : 2); }
  // Throws std::invalid_argument naming the bad setting and what is accepted:
  // every number finite and in range, every choice known.
  void validate() const;
};

// "" when the two settings objects are equal, else the first difference in
// key order: "lr: 0.1 in <a_name>, 0.05 in <b_name>". A key of
// `b_missing_means` that b (at any depth) lacks reads as that value there:
// for settings recorded before the key existed (settings_before_they_existed). Two
// strings naming the same existing file or directory (a relative and an
// absolute path to one teacher) are equal.
std::string first_difference(const nlohmann::json& a, const std::string& a_name, const nlohmann::json& b,
                             const std::string& b_name, const nlohmann::json& b_missing_means = {});

// Learning rate at a point of training, `epoch` counted from 0 and possibly
// fractional (epoch 3.5 = half-way through the fourth). The schedule follows
// training progress, so a short run decays too: step drops x0.1 at 50% and 75%
// of the epochs (epochs 100 and 150 of 200), cosine anneals to 0.
double lr_at(const TrainConfig& c, double epoch);

}  // namespace dr::train
