#pragma once
// The one epoch loop of every training in deepreduce: a run (trainer.cpp)
// and SNL's mask search (snl.cpp) both train their epochs here. The loop
// makes the batches, runs forward (under the precision's autocast) and the
// task loss (cross-entropy, or KD from a teacher, in fp32) plus the method's
// extra terms, reads the sums from the device every kSyncSteps steps and
// stops a diverged training, backpropagates (averaging gradients over the
// ranks when data-parallel), steps the optimiser, draws the progress line
// and shares the cores among the machine's deepreduce jobs. What differs
// between trainings is a TrainingHooks.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "data/dataset.h"
#include "nn/net.h"
#include "train/common.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/precision.h"
#include "util/job_registry.h"

namespace dr::train {

// With automatic threads (--threads 0): cores / live deepreduce jobs of this
// machine threads (at least 1), re-checked every 2 s, so concurrent jobs
// split the cores and one left alone takes them back. Otherwise nothing.
class CoreSharing {
 public:
  explicit CoreSharing(int threads);
  void share();                    // now
  void share_every_two_seconds();  // cheap: at most a clock read between shares
  bool on() const { return jobs_ != nullptr; }

 private:
  std::unique_ptr<util::JobRegistry> jobs_;
  Clock::time_point shared_at_;
};

// The epoch so far, for the progress line.
struct StepProgress {
  int64_t epoch = 0, step = 0, steps = 0;  // 0-based epoch and step
  double loss = 0, acc = 0;                // this rank's mean over the epoch so far
  double images_per_s = 0;                 // all ranks
  double elapsed_s = 0;                    // since the epoch started
};

class TrainingHooks {
 public:
  virtual ~TrainingHooks() = default;
  // Before each step: the optimiser's settings for it (a run: the schedule's lr).
  virtual void before_step(int64_t /*epoch*/, int64_t /*step*/, int64_t /*steps*/) {}
  // Terms added to the task loss (SNL: lasso x sum |m|); undefined: none.
  virtual torch::Tensor extra_loss() { return {}; }
  // The error of a training whose loss `loss` is not finite.
  virtual std::string diverged(double loss, int64_t epoch, int64_t step) const = 0;
  // Every kSyncSteps steps: the task loss's mean over the epoch so far (over
  // every rank's images when data-parallel: the same value on each rank). A
  // hook may stop the epoch by throwing (the SNL search's loss-spike rule).
  virtual void check_task_loss(double /*mean*/, int64_t /*epoch*/, int64_t /*step*/) {}
  // The progress line (redrawn in place), or "" to leave it as it is.
  virtual std::string progress_line(const StepProgress& p) = 0;
};

// What the epoch's steps gave.
struct TrainedEpoch {
  EpochStats stats;  // summed loss, correct and images (over the ranks when data-parallel)
  double task_loss = 0;  // summed as stats.loss, without the hooks' extra terms
  double seconds = 0, wait = 0;  // the steps' time, and of it the wait for batches
  Clock::time_point start;
};

struct EngineParts {
  nn::Net net{nullptr};
  nn::Net* teacher = nullptr;        // KD from it; null: cross-entropy
  torch::optim::Optimizer* optimizer = nullptr;
  data::Batches* batches = nullptr;
  Precision* precision = nullptr;
  Distributed* dist = nullptr;       // null: one process
  CoreSharing* cores = nullptr;
  torch::Device device = torch::kCPU;
  int64_t batch = 0, train_images = 0;  // the global batch and the split's size (data-parallel weighting)
  double kd_T = 0, kd_lambda = 0;      // the training's (TrainConfig), used with a teacher
  double clip_grad = 0;                // TrainConfig::clip_grad: over every tensor the optimiser steps
};

class TrainingEngine {
 public:
  TrainingEngine(EngineParts parts, TrainingHooks& hooks) : p_(std::move(parts)), hooks_(hooks) {}
  // Steps between reads of the epoch's loss and accuracy from the device (a
  // host synchronisation each): the divergence check and the progress line
  // see them every this many steps.
  static constexpr int64_t kSyncSteps = 16;

  TrainedEpoch train_epoch(int64_t epoch);
  // Ends an open progress line: with a newline (before a line of its own),
  // or without (a line starting with '\r' replaces it).
  void end_progress_line(bool newline = true);

 private:
  struct Sums {
    torch::Tensor loss, task, correct;  // on the device
  };
  torch::Tensor task_loss(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& y);
  void synchronise(TrainedEpoch& t, const Sums& s, int64_t epoch, int64_t step);
  void backward(const torch::Tensor& loss, int64_t n_local, int64_t step);
  void show_progress(const TrainedEpoch& t, const Sums& s, int64_t epoch, int64_t step, int64_t steps);

  EngineParts p_;
  TrainingHooks& hooks_;
  Clock::time_point last_print_{};
  bool progress_open_ = false;
};

// metrics.jsonl in `dir`: one line per finished epoch, rebuilt whole from
// the history a checkpoint holds (so a kill between the checkpoint and this
// file loses no line: a resume writes it again).
void write_metrics(const std::string& dir, const nlohmann::json& history);

// The kill test's hook: with DEEPREDUCE_KILL_AFTER_CHECKPOINT=N the process
// SIGKILLs itself right after epoch N's checkpoint is committed and before
// metrics.jsonl is written: the window where a real kill once lost a line.
void kill_point_after_checkpoint(int64_t epochs_done);

}  // namespace dr::train
