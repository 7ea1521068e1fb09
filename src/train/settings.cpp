#include "train/settings.h"

#include <climits>
#include <stdexcept>

namespace dr::train {

namespace {

using Check = std::function<void(const TrainConfig&)>;

template <class T>
Check number(const char* flag, T TrainConfig::*m, double lo, double hi, bool lo_open = false, bool hi_open = false) {
  return [=](const TrainConfig& c) { check_number(flag, static_cast<double>(c.*m), lo, hi, lo_open, hi_open); };
}
template <class T>
Check integer(const char* flag, T TrainConfig::*m, int64_t lo, int64_t hi) {
  return [=](const TrainConfig& c) { check_integer(flag, static_cast<int64_t>(c.*m), lo, hi); };
}
Check one_of(const char* flag, std::string TrainConfig::*m, std::vector<std::string> accepted) {
  return [=](const TrainConfig& c) { check_choice(flag, c.*m, accepted); };
}

std::vector<Setting> make_table() {
  using S = Setting;
  using C = TrainConfig;
  std::vector<Setting> t;
  auto row = [&](Setting s) { t.push_back(std::move(s)); };
  // What the run is: set by each command (--model, --data, --out, --teacher, ...).
  row({"model", &C::model, S::Run, "", "", true, true});
  row({"data", &C::data, S::Run, "", "", true, true, nullptr, true});
  row({"out", &C::out, S::Run, "", "", false});
  row({"teacher", &C::teacher, S::Distillation, "", "", true, false, nullptr, true});
  // The training command line, in its --help order.
  row({"epochs", &C::epochs, S::Training, "--epochs", "Training epochs", true, true, nullptr, false, 1, kMaxEpochs,
       integer("--epochs", &C::epochs, 1, kMaxEpochs)});
  row({"batch", &C::batch, S::Training, "--batch", "Batch size (global, over all data-parallel ranks)", true, true,
       nullptr, true, 1, kMaxBatch, integer("--batch", &C::batch, 1, kMaxBatch)});
  row({"lr", &C::lr, S::Training, "--lr", "Initial learning rate (SGD)", true, true, nullptr, false, 0, -1,
       number("--lr", &C::lr, 0, 100, true)});
  row({"momentum", &C::momentum, S::Sgd, "--momentum", "SGD momentum", true, false, nullptr, false, 0, -1,
       number("--momentum", &C::momentum, 0, 1, false, true)});
  row({"nesterov", &C::nesterov, S::Sgd, "--nesterov", "Nesterov momentum", true, false, nullptr, false, 0, -1,
       [](const C& c) {
         // LibTorch's SGD refuses Nesterov without momentum, but only once the data is read.
         if (c.nesterov && c.momentum == 0)
           throw std::invalid_argument("--momentum 0 needs --no-nesterov (Nesterov momentum needs a momentum in (0, 1))");
       }});
  row({"wd", &C::wd, S::Sgd, "--wd", "Weight decay", true, false, nullptr, false, 0, -1,
       number("--wd", &C::wd, 0, 1)});
  row({"schedule", &C::schedule, S::Sgd, "--schedule",
       "Learning-rate schedule: step (x0.1 at 50% and 75% of the epochs) or cosine", true, false, nullptr, false, 0,
       -1, one_of("--schedule", &C::schedule, {"step", "cosine"})});
  row({"warmup", &C::warmup, S::Sgd, "--warmup", "Epochs (fractional) of linear learning-rate warm-up from 0",
       true, false, 0.0, false, 0, -1, [](const C& c) {
         check_number("--warmup", c.warmup, 0, static_cast<double>(c.epochs), false, true);  // below --epochs
       }});
  row({"pad", &C::pad, S::Augmentation, "--pad",
       "Augmentation: reflect padding for the random crop (0 = no crop; -1 = 4 for 32x32 and larger images, 2 for "
       "smaller)",
       true, false, 4, true, -1, kMaxPad, integer("--pad", &C::pad, -1, kMaxPad)});
  row({"flip", &C::flip, S::Augmentation, "--flip", "Augmentation: random horizontal flip", true, false, true, true});
  row({"weight_init", &C::weight_init, S::Init, "--weight-init",
       "Weight init: torch (LibTorch defaults) or kaiming (He-normal fan-out, as torchvision)", true, false, "torch",
       false, 0, -1, one_of("--weight-init", &C::weight_init, {"torch", "kaiming"})});
  row({"zero_init_residual", &C::zero_init_residual, S::Init, "--zero-init-residual",
       "Start the last BatchNorm of each residual block at 0 (each block starts as its shortcut)", true, false,
       false});
  row({"seed", &C::seed, S::Run, "--seed", "Random seed (weights, shuffling, augmentation)", true, false, nullptr,
       true, 0, INT64_MAX, [](const C& c) {
         if (c.seed > static_cast<uint64_t>(INT64_MAX))
           throw std::invalid_argument("--seed must be in 0.." + std::to_string(INT64_MAX) + " (got " +
                                       std::to_string(c.seed) + ": a negative number?)");
       }});
  // The cores this process may use are checked here, not on the command line.
  row({"threads", &C::threads, S::Execution, "--threads", "Compute threads (0 = every core)", false, false, nullptr,
       true, 0, INT_MAX, [](const C& c) { check_threads("--threads", c.threads); }});
  row({"workers", &C::workers, S::Execution, "--workers", "Data-loading threads", false, false, nullptr, true, 0,
       kMaxWorkers, integer("--workers", &C::workers, 0, kMaxWorkers)});
  row({"device", &C::device, S::Execution, "--device", "cpu, cuda or auto", false, false, nullptr, true, 0, -1,
       one_of("--device", &C::device, {"cpu", "cuda", "auto"})});
  row({"data_path", &C::data_path, S::Execution, "--data-path",
       "Where batches are made: device (the training split held on the training device, augmented by batched tensor "
       "operations), host (per-image worker threads) or auto (device up to 4 GiB of images); the batches are the same",
       false, false, "auto", true, 0, -1, one_of("--data-path", &C::data_path, {"auto", "device", "host"})});
  row({"precision", &C::precision, S::Execution, "--precision",
       "Arithmetic of the forward and backward passes: fp32, bf16 (autocast) or fp16 (autocast with dynamic loss "
       "scaling); weights, BatchNorm statistics and the loss stay fp32",
       true, false, "fp32", false, 0, -1, one_of("--precision", &C::precision, {"fp32", "bf16", "fp16"})});
  row({"limit", &C::limit, S::Run, "--limit", "Use only the first N train and test images (0 = all)", true, false,
       nullptr, true, 0, kMaxLimit, integer("--limit", &C::limit, 0, kMaxLimit)});
  row({"kd_T", &C::kd_T, S::Distillation, "--kd-T", "Distillation temperature T", true, false, nullptr, true, 0, -1,
       number("--kd-T", &C::kd_T, 0.01, 1000)});
  row({"kd_lambda", &C::kd_lambda, S::Distillation, "--kd-lambda",
       "Weight of the distillation term: CE + lambda*T^2*KL", true, false, nullptr, false, 0, -1,
       number("--kd-lambda", &C::kd_lambda, 0, 1000)});
  // Where the weights start and what the network holds: set by the commands.
  row({"init", &C::init, S::Init, "", "", true, false, nullptr, false, 0, -1, [](const C& c) {
         if (!c.init.empty()) check_choice("--init", c.init, {"teacher"});
         if (c.init == "teacher" && c.teacher.empty()) throw std::invalid_argument("--init teacher needs --teacher DIR");
         if (!c.init.empty() && !c.init_weights.empty())
           throw std::invalid_argument("give --init teacher or starting weights, not both");
       }});
  row({"masked", &C::masked, S::Run, "", "", true, false, false});
  row({"init_weights", &C::init_weights, S::Init, "", "", true, false, ""});
  return t;
}

}  // namespace

const std::vector<Setting>& train_settings() {
  static const std::vector<Setting> table = make_table();
  return table;
}

const char* group_name(Setting::Group g) {
  switch (g) {
    case Setting::Run: return "Run";
    case Setting::Training: return "Training";
    case Setting::Sgd: return "SGD and its schedule";
    case Setting::Augmentation: return "Augmentation";
    case Setting::Distillation: return "Distillation";
    case Setting::Execution: return "Execution";
    case Setting::Init: return "Initialisation";
  }
  return "?";
}

}  // namespace dr::train
