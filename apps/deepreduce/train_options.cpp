// Training options shared by train, criticality and reduce.
#include <charconv>
#include <climits>

#include "commands.h"

namespace dr::cli {

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        // Decimal digits with an optional minus sign, checked on the text: CLI11's own
        // conversion saturates (9223372036854775808 -> 9223372036854775807), wraps
        // negatives of unsigned options and reads 010 as octal.
        int64_t v = 0;
        const char* b = text.data();
        const char* e = b + text.size();
        const bool digits = !text.empty() && text.find_first_not_of("0123456789", text[0] == '-' ? 1 : 0) ==
                                                 std::string::npos && text != "-";
        if (!digits) return "'" + text + "' is not a whole number (accepted: " + range + ")";
        const auto [end, ec] = std::from_chars(b, e, v);
        if (ec != std::errc() || end != e || v < lo || v > hi) return "must be in " + range + " (got '" + text + "')";
        return std::string();
      },
      "INT in " + range);
}

void add_training_options(CLI::App* cmd, train::TrainConfig& c) {
  cmd->add_option("--epochs", c.epochs, "Training epochs")
      ->check(integer_in(1, train::kMaxEpochs))
      ->capture_default_str();
  cmd->add_option("--batch", c.batch, "Batch size (global, over all data-parallel ranks)")
      ->check(integer_in(1, train::kMaxBatch))
      ->capture_default_str();
  cmd->add_option("--lr", c.lr, "Initial learning rate (SGD)")->capture_default_str();
  cmd->add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
  cmd->add_flag("--nesterov,!--no-nesterov", c.nesterov,
                std::string("Nesterov momentum (default ") + (c.nesterov ? "on" : "off") + ")");
  cmd->add_option("--wd", c.wd, "Weight decay")->capture_default_str();
  cmd->add_option("--schedule", c.schedule,
                  "Learning-rate schedule: step (x0.1 at 50% and 75% of the epochs) or cosine")
      ->capture_default_str();
  cmd->add_option("--warmup", c.warmup, "Epochs (fractional) of linear learning-rate warm-up from 0")
      ->capture_default_str();
  cmd->add_option("--pad", c.pad,
                  "Augmentation: reflect padding for the random crop (0 = no crop; "
                  "-1 = 4 for 32x32 and larger images, 2 for smaller)")
      ->check(integer_in(-1, train::kMaxPad))
      ->capture_default_str();
  cmd->add_flag("--flip,!--no-flip", c.flip,
                std::string("Augmentation: random horizontal flip (default ") + (c.flip ? "on" : "off") + ")");
  cmd->add_option("--weight-init", c.weight_init,
                  "Weight init: torch (LibTorch defaults) or kaiming (He-normal fan-out, as torchvision)")
      ->capture_default_str();
  cmd->add_flag("--zero-init-residual,!--no-zero-init-residual", c.zero_init_residual,
                "Start the last BatchNorm of each residual block at 0 (each block starts as its shortcut)");
  cmd->add_option("--seed", c.seed, "Random seed (weights, shuffling, augmentation)")
      ->check(integer_in(0, INT64_MAX))
      ->capture_default_str();
  // The cores this process may use are checked with the other settings.
  cmd->add_option("--threads", c.threads, "Compute threads (0 = every core)")
      ->check(integer_in(0, INT_MAX))
      ->capture_default_str();
  cmd->add_option("--workers", c.workers, "Data-loading threads")
      ->check(integer_in(0, train::kMaxWorkers))
      ->capture_default_str();
  cmd->add_option("--device", c.device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--data-path", c.data_path,
                  "Where batches are made: device (the training split held on the training device, "
                  "augmented by batched tensor operations), host (per-image worker threads) or auto "
                  "(device up to 4 GiB of images); the batches are the same")
      ->capture_default_str();
  cmd->add_option("--precision", c.precision,
                  "Arithmetic of the forward and backward passes: fp32, bf16 (autocast) or fp16 (autocast "
                  "with dynamic loss scaling); weights, BatchNorm statistics and the loss stay fp32")
      ->capture_default_str();
  cmd->add_option("--limit", c.limit, "Use only the first N train and test images (0 = all)")
      ->check(integer_in(0, train::kMaxLimit))
      ->capture_default_str();
  cmd->add_option("--kd-T", c.kd_T, "Distillation temperature T")->capture_default_str();
  cmd->add_option("--kd-lambda", c.kd_lambda, "Weight of the distillation term: CE + lambda*T^2*KL")
      ->capture_default_str();
}

}  // namespace dr::cli
