// Training options shared by train, criticality and reduce.
#include "commands.h"

namespace dr::cli {

void add_training_options(CLI::App* cmd, train::TrainConfig& c) {
  cmd->add_option("--epochs", c.epochs, "Training epochs")->capture_default_str();
  cmd->add_option("--batch", c.batch, "Batch size (global, over all data-parallel ranks)")->capture_default_str();
  cmd->add_option("--lr", c.lr, "Initial learning rate (SGD)")->capture_default_str();
  cmd->add_option("--momentum", c.momentum, "SGD momentum")->capture_default_str();
  cmd->add_flag("--nesterov,!--no-nesterov", c.nesterov, "Nesterov momentum (default on)");
  cmd->add_option("--wd", c.wd, "Weight decay")->capture_default_str();
  cmd->add_option("--schedule", c.schedule,
                  "Learning-rate schedule: step (x0.1 at 50% and 75% of the epochs) or cosine")
      ->capture_default_str();
  cmd->add_option("--warmup", c.warmup, "Epochs (fractional) of linear learning-rate warm-up from 0")
      ->capture_default_str();
  cmd->add_option("--pad", c.pad,
                  "Augmentation: reflect padding for the random crop (0 = no crop; "
                  "-1 = 4 for 32x32 and larger images, 2 for smaller)")
      ->capture_default_str();
  cmd->add_flag("--flip,!--no-flip", c.flip, "Augmentation: random horizontal flip (default on)");
  cmd->add_option("--weight-init", c.weight_init,
                  "Weight init: torch (LibTorch defaults) or kaiming (He-normal fan-out, as torchvision)")
      ->capture_default_str();
  cmd->add_flag("--zero-init-residual,!--no-zero-init-residual", c.zero_init_residual,
                "Start the last BatchNorm of each residual block at 0 (each block starts as its shortcut)");
  cmd->add_option("--seed", c.seed, "Random seed (weights, shuffling, augmentation)")->capture_default_str();
  cmd->add_option("--threads", c.threads, "Compute threads (0 = every core)")->capture_default_str();
  cmd->add_option("--workers", c.workers, "Data-loading threads")->capture_default_str();
  cmd->add_option("--device", c.device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--limit", c.limit, "Use only the first N train and test images (0 = all)")->capture_default_str();
  cmd->add_option("--kd-T", c.kd_T, "Distillation temperature T")->capture_default_str();
  cmd->add_option("--kd-lambda", c.kd_lambda, "Weight of the distillation term: CE + lambda*T^2*KL")
      ->capture_default_str();
}

}  // namespace dr::cli
