#include "train/engine.h"

#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "train/kd.h"
#include "util/fs.h"

namespace dr::train {

CoreSharing::CoreSharing(int threads) {
  if (threads != 0) return;
  jobs_ = std::make_unique<util::JobRegistry>();
  share();
}

void CoreSharing::share() {
  if (!jobs_) return;
  shared_at_ = Clock::now();
  const int n = std::max(1, max_threads() / jobs_->live_jobs());
  if (torch::get_num_threads() != n) torch::set_num_threads(n);
}

void CoreSharing::share_every_two_seconds() {
  if (jobs_ && seconds_since(shared_at_) > 2.0) share();
}

TrainedEpoch TrainingEngine::train_epoch(int64_t epoch) {
  TrainedEpoch t;
  t.start = last_print_ = Clock::now();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(p_.device);
  Sums s{torch::zeros({}, f64), torch::zeros({}, f64),
         torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(p_.device))};
  p_.net->train();
  p_.batches->start_epoch(epoch);
  const int64_t steps = p_.batches->batches_per_epoch();
  torch::Tensor x, y;
  for (int64_t step = 0;; ++step) {
    const auto tw = Clock::now();
    if (!p_.batches->next(x, y)) break;
    t.wait += seconds_since(tw);
    hooks_.before_step(epoch, step, steps);
    x = x.to(p_.device, /*non_blocking=*/true), y = y.to(p_.device, /*non_blocking=*/true);
    torch::Tensor out, task, loss;
    {
      const auto autocast = p_.precision->autocast();
      out = p_.net->forward(x);
      task = task_loss(out, x, y);
      const torch::Tensor extra = hooks_.extra_loss();
      loss = extra.defined() ? task + extra : task;
    }
    backward(loss, x.size(0), step);
    torch::NoGradGuard ng;
    s.loss += loss.detach() * static_cast<double>(x.size(0));
    s.task += task.detach() * static_cast<double>(x.size(0));
    s.correct += out.argmax(1).eq(y).sum();
    t.stats.images += static_cast<double>(x.size(0));
    if ((step + 1) % kSyncSteps == 0 || step + 1 == steps) synchronise(t, s, epoch, step);
    show_progress(t, s, epoch, step, steps);
    if (p_.cores) p_.cores->share_every_two_seconds();
  }
  if (p_.dist) {
    t.stats.loss = p_.dist->sum(t.stats.loss);
    t.stats.correct = p_.dist->sum(t.stats.correct);
    t.stats.images = p_.dist->sum(t.stats.images);
    t.task_loss = p_.dist->sum(t.task_loss);
  }
  t.seconds = seconds_since(t.start);
  return t;
}

// The task loss (and KD's softmax) in fp32 from the network's outputs,
// whatever the precision of the forward pass.
torch::Tensor TrainingEngine::task_loss(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& y) {
  // Data-parallel: this rank's slice of a short last batch may be empty. It
  // still runs the forward and backward passes (their collectives) and
  // contributes zero gradients.
  if (x.size(0) == 0) return out.sum().to(torch::kFloat32) * 0;
  torch::Tensor loss;
  if (!p_.teacher) {
    loss = torch::nn::functional::cross_entropy(out.to(torch::kFloat32), y);
  } else {
    torch::Tensor t_out;
    {
      torch::NoGradGuard ng;
      t_out = (*p_.teacher)->forward(x);
    }
    loss = kd_loss(out.to(torch::kFloat32), t_out.to(torch::kFloat32), y, p_.kd_T, p_.kd_lambda).total;
  }
  return loss;
}

// Reads the epoch's sums from the device. A loss that is not finite stops
// the training; the hooks see the task loss's mean. Data-parallel: every rank
// decides on the sums of the ranks' losses, so a rank that diverges stops
// them all with this message (not with the others losing contact).
void TrainingEngine::synchronise(TrainedEpoch& t, const Sums& s, int64_t epoch, int64_t step) {
  t.stats.loss = s.loss.item<double>();
  t.task_loss = s.task.item<double>();
  t.stats.correct = static_cast<double>(s.correct.item<int64_t>());
  const double lv = p_.dist ? p_.dist->sum(t.stats.loss) : t.stats.loss;
  if (!std::isfinite(lv)) throw std::runtime_error(hooks_.diverged(lv, epoch, step));
  // Every rank's images so far: the global batches of the steps done (a short last one cut).
  const double images = p_.dist ? static_cast<double>(std::min(p_.batch * (step + 1), p_.train_images)) : t.stats.images;
  const double task = p_.dist ? p_.dist->sum(t.task_loss) : t.task_loss;
  hooks_.check_task_loss(task / std::max(1.0, images), epoch, step);
}

void TrainingEngine::backward(const torch::Tensor& loss, int64_t n_local, int64_t step) {
  p_.optimizer->zero_grad();
  // Every parameter the optimiser steps, a method's own (SNL's masks) as
  // well as the network's: averaged over the ranks, unscaled (fp16).
  std::vector<torch::Tensor> stepped;
  for (const auto& g : p_.optimizer->param_groups()) stepped.insert(stepped.end(), g.params().begin(), g.params().end());
  if (p_.dist) {
    // Weight this rank's mean loss by its share of the global batch (times
    // world, undone by average_gradients): the averaged gradient is then that
    // of the global batch's mean loss, also when a short last batch is cut
    // unevenly over the ranks.
    const int64_t global = std::min<int64_t>(p_.batch, p_.train_images - step * p_.batch);
    p_.precision
        ->for_backward(loss * (static_cast<double>(n_local) * p_.dist->world() / static_cast<double>(global)))
        .backward();
    p_.dist->average_gradients(stepped);
  } else {
    p_.precision->for_backward(loss).backward();
  }
  // fp16: a step whose gradients overflowed is skipped (and the scale lowered).
  if (!p_.precision->unscale(stepped)) return;
  // After unscaling and averaging: the norm of the gradient the step takes.
  if (p_.clip_grad > 0) torch::nn::utils::clip_grad_norm_(stepped, p_.clip_grad);
  p_.optimizer->step();
}

// Every ~2 s and at the epoch's end (rank 0): the epoch so far, read from
// the device (this rank's share when data-parallel).
void TrainingEngine::show_progress(const TrainedEpoch& t, const Sums& s, int64_t epoch, int64_t step, int64_t steps) {
  if ((p_.dist && p_.dist->rank() != 0) || (seconds_since(last_print_) <= 2.0 && step + 1 != steps)) return;
  last_print_ = Clock::now();
  StepProgress p;
  p.epoch = epoch, p.step = step, p.steps = steps;
  const double images = std::max(1.0, t.stats.images);
  p.loss = s.loss.item<double>() / images;
  p.acc = static_cast<double>(s.correct.item<int64_t>()) / images;
  p.elapsed_s = seconds_since(t.start);
  p.images_per_s = t.stats.images / p.elapsed_s * (p_.dist ? p_.dist->world() : 1);
  const std::string line = hooks_.progress_line(p);
  if (line.empty()) return;
  std::fprintf(stderr, "\r%s", line.c_str());
  std::fflush(stderr);
  progress_open_ = true;
}

void TrainingEngine::end_progress_line(bool newline) {
  if (progress_open_ && newline) std::fputc('\n', stderr);
  progress_open_ = false;
}

void write_metrics(const std::string& dir, const nlohmann::json& history) {
  std::string lines;
  for (const auto& r : history) lines += r.dump() + "\n";
  util::write_file_atomic(util::path_join(dir, "metrics.jsonl"), lines);
}

void kill_point_after_checkpoint(int64_t epochs_done) {
  const char* v = std::getenv("DEEPREDUCE_KILL_AFTER_CHECKPOINT");
  if (v && std::to_string(epochs_done) == v) std::raise(SIGKILL);
}

}  // namespace dr::train
