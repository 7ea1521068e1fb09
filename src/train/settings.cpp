#include "train/settings.h"

#include <climits>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace dr::train {

namespace {

using Check = Setting::Check;

Check number(const char* flag, double TrainConfig::*m, double lo, double hi, bool lo_open = false,
             bool hi_open = false) {
  return [=](const TrainConfig& c) { check_number(flag, c.*m, lo, hi, lo_open, hi_open); };
}
Check one_of(const char* flag, std::string TrainConfig::*m, std::vector<std::string> accepted) {
  return [=](const TrainConfig& c) { check_choice(flag, c.*m, accepted); };
}

using S = Setting;
using C = TrainConfig;

// What the run is: set by each command (--model, --data, --out, --teacher, ...).
void run_rows(std::vector<Setting>& t) {
  t.push_back(S("model", &C::model, S::Run).must_be_recorded());
  t.push_back(S("data", &C::data, S::Run).must_be_recorded().shared_with_search());
  t.push_back(S("out", &C::out, S::Run).speed_only());
  t.push_back(S("teacher", &C::teacher, S::Distillation).shared_with_search());
}

// The training command line, in its --help order: the optimisation, ...
void optimisation_rows(std::vector<Setting>& t) {
  t.push_back(S("epochs", &C::epochs, S::Training, "--epochs", "Training epochs")
                  .must_be_recorded()
                  .integer_in(1, kMaxEpochs));
  t.push_back(S("batch", &C::batch, S::Training, "--batch", "Batch size (global, over all data-parallel ranks)")
                  .must_be_recorded()
                  .shared_with_search()
                  .integer_in(1, kMaxBatch));
  t.push_back(S("lr", &C::lr, S::Training, "--lr", "Initial learning rate (SGD)")
                  .must_be_recorded()
                  .checked(number("--lr", &C::lr, 0, 100, true)));
  t.push_back(S("momentum", &C::momentum, S::Sgd, "--momentum", "SGD momentum")
                  .checked(number("--momentum", &C::momentum, 0, 1, false, true)));
  t.push_back(S("nesterov", &C::nesterov, S::Sgd, "--nesterov", "Nesterov momentum").checked([](const C& c) {
    // LibTorch's SGD refuses Nesterov without momentum, but only once the data is read.
    if (c.nesterov && c.momentum == 0)
      throw std::invalid_argument("--momentum 0 needs --no-nesterov (Nesterov momentum needs a momentum in (0, 1))");
  }));
  t.push_back(S("wd", &C::wd, S::Sgd, "--wd", "Weight decay").checked(number("--wd", &C::wd, 0, 1)));
  t.push_back(S("clip_grad", &C::clip_grad, S::Training, "--clip-grad",
                "Clip the global L2 norm of the gradients to this before each step, as torch's clip_grad_norm_ "
                "(0: off)")
                  .before_it_existed(0.0)
                  .checked(number("--clip-grad", &C::clip_grad, 0, 1e6)));
  t.push_back(S("schedule", &C::schedule, S::Sgd, "--schedule",
                "Learning-rate schedule: step (x0.1 at 50% and 75% of the epochs) or cosine")
                  .checked(one_of("--schedule", &C::schedule, {"step", "cosine"})));
  t.push_back(S("warmup", &C::warmup, S::Sgd, "--warmup", "Epochs (fractional) of linear learning-rate warm-up from 0")
                  .before_it_existed(0.0)
                  .checked([](const C& c) {
                    check_number("--warmup", c.warmup, 0, static_cast<double>(c.epochs), false, true);  // below --epochs
                  }));
}

// ... the augmentation, the initialisation and the seed, ...
void augmentation_and_init_rows(std::vector<Setting>& t) {
  t.push_back(S("pad", &C::pad, S::Augmentation, "--pad",
                "Augmentation: reflect padding for the random crop (0 = no crop; -1 = 4 for 32x32 and larger images, "
                "2 for smaller)")
                  .before_it_existed(4)
                  .shared_with_search()
                  .integer_in(-1, kMaxPad));
  t.push_back(S("flip", &C::flip, S::Augmentation, "--flip", "Augmentation: random horizontal flip")
                  .before_it_existed(true)
                  .shared_with_search());
  t.push_back(S("weight_init", &C::weight_init, S::Init, "--weight-init",
                "Weight init: torch (LibTorch defaults) or kaiming (He-normal fan-out, as torchvision)")
                  .before_it_existed("torch")
                  .checked(one_of("--weight-init", &C::weight_init, {"torch", "kaiming"})));
  t.push_back(S("zero_init_residual", &C::zero_init_residual, S::Init, "--zero-init-residual",
                "Start the last BatchNorm of each residual block at 0 (each block starts as its shortcut)")
                  .before_it_existed(false));
  t.push_back(S("seed", &C::seed, S::Run, "--seed", "Random seed (weights, shuffling, augmentation)")
                  .shared_with_search()
                  .typed_range(0, INT64_MAX)
                  .checked([](const C& c) {
                    if (c.seed > static_cast<uint64_t>(INT64_MAX))
                      throw std::invalid_argument("--seed must be in 0.." + std::to_string(INT64_MAX) + " (got " +
                                                  std::to_string(c.seed) + ": a negative number?)");
                  }));
}

// ... how and where it runs, ...
void execution_rows(std::vector<Setting>& t) {
  // The cores this process may use are checked by validate(), not on the command line.
  t.push_back(S("threads", &C::threads, S::Execution, "--threads", "Compute threads (0 = every core)")
                  .speed_only()
                  .shared_with_search()
                  .typed_range(0, INT_MAX)
                  .checked([](const C& c) { check_threads("--threads", c.threads); }));
  t.push_back(S("workers", &C::workers, S::Execution, "--workers", "Data-loading threads")
                  .speed_only()
                  .shared_with_search()
                  .integer_in(0, kMaxWorkers));
  t.push_back(S("device", &C::device, S::Execution, "--device", "cpu, cuda or auto")
                  .speed_only()
                  .shared_with_search()
                  .checked(one_of("--device", &C::device, {"cpu", "cuda", "auto"})));
  t.push_back(S("data_path", &C::data_path, S::Execution, "--data-path",
                "Where batches are made: device (the training split held on the training device, augmented by "
                "batched tensor operations), host (per-image worker threads) or auto (device up to 4 GiB of "
                "images); the batches are the same")
                  .speed_only()
                  .before_it_existed("auto")
                  .shared_with_search()
                  .checked(one_of("--data-path", &C::data_path, {"auto", "device", "host"})));
  t.push_back(S("precision", &C::precision, S::Execution, "--precision",
                "Arithmetic of the forward and backward passes: fp32, bf16 (autocast) or fp16 (autocast with "
                "dynamic loss scaling); weights, BatchNorm statistics and the loss stay fp32")
                  .before_it_existed("fp32")
                  .checked(one_of("--precision", &C::precision, {"fp32", "bf16", "fp16"})));
}

// ... the images used and the distillation.
void data_and_distillation_rows(std::vector<Setting>& t) {
  t.push_back(S("limit", &C::limit, S::Run, "--limit", "Use only the first N train and test images (0 = all)")
                  .shared_with_search()
                  .integer_in(0, kMaxLimit));
  t.push_back(S("kd_T", &C::kd_T, S::Distillation, "--kd-T", "Distillation temperature T")
                  .shared_with_search()
                  .checked(number("--kd-T", &C::kd_T, 0.01, 1000)));
  t.push_back(S("kd_lambda", &C::kd_lambda, S::Distillation, "--kd-lambda",
                "Weight of the distillation term: CE + lambda*T^2*KL")
                  .checked(number("--kd-lambda", &C::kd_lambda, 0, 1000)));
}

// Where the weights start and what the network holds: set by the commands.
void start_rows(std::vector<Setting>& t) {
  t.push_back(S("init", &C::init, S::Init).checked([](const C& c) {
    if (!c.init.empty()) check_choice("--init", c.init, {"teacher"});
    if (c.init == "teacher" && c.teacher.empty()) throw std::invalid_argument("--init teacher needs --teacher DIR");
    if (!c.init.empty() && !c.init_weights.empty())
      throw std::invalid_argument("give --init teacher or starting weights, not both");
  }));
  t.push_back(S("masked", &C::masked, S::Run).before_it_existed(false));
  t.push_back(S("init_weights", &C::init_weights, S::Init).before_it_existed(""));
}

std::vector<Setting> make_table() {
  std::vector<Setting> t;
  for (auto* rows : {run_rows, optimisation_rows, augmentation_and_init_rows, execution_rows,
                     data_and_distillation_rows, start_rows})
    rows(t);
  return t;
}

}  // namespace

Setting& Setting::integer_in(int64_t lo, int64_t hi) {
  typed_range(lo, hi);
  const char* name = flag;
  return checked(std::visit(
      [=](auto m) -> Check {
        using T = std::decay_t<decltype(std::declval<TrainConfig>().*m)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
          return [=](const TrainConfig& c) { check_integer(name, static_cast<int64_t>(c.*m), lo, hi); };
        else
          throw std::logic_error(std::string("settings table: ") + name + " is not an integer");
      },
      member));
}

const std::vector<Setting>& train_settings() {
  static const std::vector<Setting> table = make_table();
  return table;
}

nlohmann::json settings_before_they_existed() {
  nlohmann::json j = nlohmann::json::object();
  for (const Setting& s : train_settings())
    if (!s.before.is_null()) j[s.key] = s.before;
  return j;
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
