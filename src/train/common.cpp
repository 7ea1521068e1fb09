#include "train/common.h"

#include <cstdio>

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

data::LoaderOptions train_loader_options(const TrainConfig& cfg) {
  data::LoaderOptions lo;
  lo.batch = cfg.batch;
  lo.seed = cfg.seed;
  lo.workers = cfg.workers;
  lo.pad = cfg.pad;
  lo.flip = cfg.flip;
  return lo;
}

EpochStats run_eval(nn::Net& net, const data::Dataset& d, torch::Device dev, int workers) {
  data::LoaderOptions lo;
  lo.batch = 256;
  lo.train = false;
  lo.workers = workers;
  data::BatchLoader loader(d, lo);
  torch::NoGradGuard ng;
  net->eval();
  EpochStats s;
  torch::Tensor x, y;
  loader.start_epoch(0);
  while (loader.next(x, y)) {
    x = x.to(dev), y = y.to(dev);
    const auto out = net->forward(x);
    s.loss += torch::nn::functional::cross_entropy(
                  out, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                  .item<double>();
    s.correct += out.argmax(1).eq(y).sum().item<double>();
    s.images += x.size(0);
  }
  return s;
}

}  // namespace dr::train
