#include "train/common.h"

#include <cstdio>

#include "data/device_batches.h"
#include "train/trainer.h"
#include "train/weights.h"

namespace dr::train {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string hms(double s) {
  char buf[32];
  const int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

arch::InputSpec input_of(const data::Dataset& d) { return {{d.channels(), d.height(), d.width()}, d.classes}; }

nn::Net load_teacher(const std::string& dir, const arch::InputSpec& student_in, torch::Device dev) {
  check_teacher(dir, student_in);
  nn::Net t(run_network(dir));
  load_into(t, load_run_weights(dir), true, "teacher weights '" + dir + "/weights.pt'");
  t->to(dev);
  t->eval();
  return t;
}

std::unique_ptr<data::Batches> train_batches(const TrainConfig& cfg, const data::Dataset& d, torch::Device dev,
                                             int rank, int world) {
  data::LoaderOptions lo;
  lo.batch = cfg.batch;
  lo.seed = cfg.seed;
  lo.workers = cfg.workers;
  lo.pad = cfg.pad;
  lo.flip = cfg.flip;
  lo.rank = rank, lo.world = world;
  lo.pin = dev.is_cuda();  // host batches: page-locked, copied without blocking
  return data::make_batches(d, lo, dev, cfg.data_path);
}

EpochStats run_eval(nn::Net& net, const data::Dataset& d, torch::Device dev, int workers,
                    const std::string& data_path) {
  data::LoaderOptions lo;
  lo.batch = 256;
  lo.train = false;
  lo.workers = workers;
  lo.pin = dev.is_cuda();
  const std::unique_ptr<data::Batches> batches = data::make_batches(d, lo, dev, data_path);
  torch::NoGradGuard ng;
  net->eval();
  // Summed on the device: one host synchronisation at the end.
  torch::Tensor loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(dev));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(dev));
  EpochStats s;
  torch::Tensor x, y;
  batches->start_epoch(0);
  while (batches->next(x, y)) {
    x = x.to(dev, /*non_blocking=*/true), y = y.to(dev, /*non_blocking=*/true);
    const auto out = net->forward(x);
    loss += torch::nn::functional::cross_entropy(
        out, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    correct += out.argmax(1).eq(y).sum();
    s.images += static_cast<double>(x.size(0));
  }
  s.loss = loss.item<double>();
  s.correct = static_cast<double>(correct.item<int64_t>());
  return s;
}

}  // namespace dr::train
