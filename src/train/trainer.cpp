#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "arch/spec.h"
#include "data/dataset.h"
#include "nn/net.h"
#include "train/distributed.h"
#include "train/kd.h"
#include "train/weights.h"
#include "util/fs.h"

namespace dr::train {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string path_in(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

std::string hms(double s) {
  char buf[32];
  const int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

torch::Device pick_device(const std::string& want) {
  if (want == "cuda" && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: this LibTorch has no CUDA device (accepted here: cpu, auto)");
  if (want == "cuda" || (want == "auto" && torch::cuda::is_available())) return torch::kCUDA;
  return torch::kCPU;
}

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(util::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "' is not valid JSON: " + e.what());
  }
}

arch::InputSpec input_of(const data::Dataset& d) {
  return {{d.channels(), d.height(), d.width()}, d.classes};
}

// The teacher of a KD run: its network in eval mode with its final weights.
nn::Net load_teacher(const std::string& dir, const arch::InputSpec& student_in, torch::Device dev) {
  const auto result = finished_result(dir);
  if (!result)
    throw std::invalid_argument("teacher '" + dir +
                                "' is not a finished run (no result.json): train it first with "
                                "`deepreduce train --out " + dir + "` or finish it with `deepreduce resume " +
                                dir + "`");
  if (result->input != student_in.shape.str() || result->classes != student_in.classes)
    throw std::invalid_argument("teacher '" + dir + "' was trained for input " + result->input + " with " +
                                std::to_string(result->classes) + " classes; this run's data gives " +
                                student_in.shape.str() + " with " + std::to_string(student_in.classes) +
                                " classes");
  nn::Net t = nn::build(result->spec, student_in);
  load_into(t, load_weights(path_in(dir, "weights.pt")), true, "teacher weights '" + dir + "/weights.pt'");
  t->to(dev);
  t->eval();
  return t;
}

struct EpochStats {
  double loss = 0, correct = 0, images = 0;
};

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

class Run {
 public:
  Run(TrainConfig cfg, Distributed* dist) : cfg_(std::move(cfg)), dist_(dist) {}

  RunResult execute(bool resuming) {
    cfg_.validate();
    set_threads(cfg_.threads);
    const torch::Device dev = pick_device(cfg_.device);
    const bool rank0 = !dist_ || dist_->rank() == 0;
    const auto t_load = Clock::now();
    data::DataSplit split = data::load_dataset(cfg_.data, cfg_.limit);
    const arch::InputSpec in = input_of(split.train);
    if (rank0)
      std::cerr << "data " << cfg_.data << ": " << split.train.size() << " train, " << split.test.size()
                << " test images " << in.shape.str() << ", " << in.classes << " classes (" << hms(seconds_since(t_load))
                << " to load)\n";

    torch::manual_seed(cfg_.seed);
    nn::Net net = nn::build(cfg_.model, in);
    net->init_parameters(cfg_.weight_init, cfg_.zero_init_residual);
    std::optional<nn::Net> teacher;
    if (!cfg_.teacher.empty()) teacher = load_teacher(cfg_.teacher, in, dev);
    if (cfg_.init == "teacher") {
      const int n = load_into(net, load_weights(path_in(cfg_.teacher, "weights.pt")), false, "teacher weights");
      if (rank0) std::cerr << "init: " << n << " tensors copied from teacher " << cfg_.teacher << "\n";
    }
    net->to(dev);
    if (dist_) {
      dist_->broadcast_parameters(net);
      dist_->sync_batch_norm(net);
    }

    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(cfg_.lr)
                                                 .momentum(cfg_.momentum)
                                                 .nesterov(cfg_.nesterov)
                                                 .weight_decay(cfg_.wd));
    nlohmann::json history = nlohmann::json::array();
    int64_t start = 0;
    const std::string ckpt = path_in(cfg_.out, "checkpoint.pt");
    if (resuming && util::file_exists(ckpt)) {
      const Checkpoint c = load_checkpoint(ckpt, net, opt);
      start = c.epochs_done;
      history = nlohmann::json::parse(c.metrics);
      if (rank0) std::cerr << "resuming " << cfg_.out << " after epoch " << start << "\n";
    }
    cfg_.pad = cfg_.pad_for(in.shape.h);  // config.json records the padding used
    if (rank0 && !resuming) util::write_file_atomic(path_in(cfg_.out, "config.json"), cfg_.to_json().dump(2) + "\n");

    data::LoaderOptions lo;
    lo.batch = cfg_.batch;
    lo.seed = cfg_.seed;
    lo.workers = cfg_.workers;
    lo.pad = cfg_.pad;
    lo.flip = cfg_.flip;
    if (dist_) lo.rank = dist_->rank(), lo.world = dist_->world();
    data::BatchLoader loader(split.train, lo);
    const arch::Totals totals = net->desc().totals();
    if (rank0)
      std::cerr << "model " << net->desc().spec << ": " << totals.relus << " ReLUs, " << totals.params
                << " params; " << (teacher ? "KD from " + cfg_.teacher : std::string("no KD")) << "; "
                << cfg_.epochs << " epochs on " << (dev.is_cuda() ? "cuda" : "cpu") << " with "
                << torch::get_num_threads() << " threads\n";

    double seconds = history.empty() ? 0.0 : history.back().value("total_seconds", 0.0);
    // An error ends the open progress line first, so it starts a line of its own.
    bool progress_open = false;
    try {
      for (int64_t epoch = start; epoch < cfg_.epochs; ++epoch) {
        // The epoch's peak rate: at its start, or at its end while warming up.
        const double lr = std::max(lr_at(cfg_, static_cast<double>(epoch)),
                                   lr_at(cfg_, static_cast<double>(epoch + 1) - 1e-9));
        const auto t0 = Clock::now();
        double wait = 0;
        EpochStats tr;
        net->train();
        loader.start_epoch(epoch);
        const int64_t steps = loader.batches_per_epoch();
        torch::Tensor x, y;
        auto last_print = Clock::now();
        for (int64_t step = 0;; ++step) {
          const auto tw = Clock::now();
          if (!loader.next(x, y)) break;
          wait += seconds_since(tw);
          const double step_lr = lr_at(cfg_, epoch + static_cast<double>(step) / std::max<int64_t>(1, steps));
          for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(step_lr);
          x = x.to(dev), y = y.to(dev);
          const int64_t n_local = x.size(0);
          torch::Tensor loss;
          const auto out = net->forward(x);
          if (n_local == 0) {
            // Data-parallel: this rank's slice of a short last batch is empty.
            // It still runs the forward and backward passes (their collectives)
            // and contributes zero gradients.
            loss = out.sum() * 0;
          } else if (teacher) {
            torch::Tensor t_out;
            {
              torch::NoGradGuard ng;
              t_out = (*teacher)->forward(x);
            }
            loss = kd_loss(out, t_out, y, cfg_.kd_T, cfg_.kd_lambda).total;
          } else {
            loss = torch::nn::functional::cross_entropy(out, y);
          }
          // Data-parallel: every rank decides on the sum of the ranks' losses,
          // so a rank that diverges stops them all with this message (not with
          // the others losing contact with it).
          const double local_loss = loss.item<double>();
          if (const double lv = dist_ ? dist_->sum(local_loss) : local_loss; !std::isfinite(lv))
            throw std::runtime_error("training of '" + cfg_.model + "' diverged (loss " + std::to_string(lv) +
                                     ") at epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1) +
                                     "; the last finished epoch is kept in " + cfg_.out + ". Try a lower --lr" +
                                     (teacher ? " or --kd-lambda" : "") + ".");
          opt.zero_grad();
          if (dist_) {
            // Weight this rank's mean loss by its share of the global batch
            // (times world, undone by average_gradients): the averaged gradient
            // is then that of the global batch's mean loss, also when a short
            // last batch is cut unevenly over the ranks.
            const int64_t global = std::min<int64_t>(cfg_.batch, split.train.size() - step * cfg_.batch);
            (loss * (static_cast<double>(n_local) * dist_->world() / static_cast<double>(global))).backward();
            dist_->average_gradients(net);
          } else {
            loss.backward();
          }
          opt.step();
          const double n = static_cast<double>(n_local);
          if (n_local > 0) tr.loss += local_loss * n;
          tr.correct += out.argmax(1).eq(y).sum().item<double>();
          tr.images += n;
          if (rank0 && (seconds_since(last_print) > 2.0 || step + 1 == steps)) {
            last_print = Clock::now();
            const double el = seconds_since(t0), ips = tr.images / el;
            const double left = (steps - step - 1) * el / (step + 1) +
                                (cfg_.epochs - epoch - 1) * el * steps / (step + 1);
            std::fprintf(stderr, "\repoch %lld/%lld step %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s   ",
                         (long long)epoch + 1, (long long)cfg_.epochs, (long long)step + 1, (long long)steps,
                         tr.loss / tr.images, tr.correct / tr.images, ips * (dist_ ? dist_->world() : 1),
                         hms(left).c_str());
            std::fflush(stderr);
            progress_open = true;
          }
        }
        if (dist_) {
          tr.loss = dist_->sum(tr.loss);
          tr.correct = dist_->sum(tr.correct);
          tr.images = dist_->sum(tr.images);
        }
        const double train_s = seconds_since(t0);
        const EpochStats te = run_eval(net, split.test, dev, cfg_.workers);
        const double epoch_s = seconds_since(t0);
        seconds += epoch_s;
        nlohmann::json rec = {{"epoch", epoch + 1},
                              {"lr", lr},
                              {"train_loss", tr.loss / std::max(1.0, tr.images)},
                              {"train_acc", tr.correct / std::max(1.0, tr.images)},
                              {"test_loss", te.loss / std::max(1.0, te.images)},
                              {"test_acc", te.correct / std::max(1.0, te.images)},
                              {"images_per_s", tr.images / train_s},
                              {"compute_images_per_s", tr.images / std::max(1e-9, train_s - wait)},
                              {"data_wait_s", wait},
                              {"seconds", epoch_s},
                              {"total_seconds", seconds}};
        history.push_back(rec);
        if (rank0) {
          std::fprintf(stderr, "\repoch %lld/%lld train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f img/s | %s\n",
                       (long long)epoch + 1, (long long)cfg_.epochs, rec["train_loss"].get<double>(),
                       rec["train_acc"].get<double>(), rec["test_loss"].get<double>(), rec["test_acc"].get<double>(),
                       rec["images_per_s"].get<double>() * (dist_ ? dist_->world() : 1), hms(epoch_s).c_str());
          // Checkpoint first, then the metrics file rebuilt from the history the
          // checkpoint holds: a kill at any point loses no finished epoch and
          // leaves no duplicate line.
          save_checkpoint(ckpt, net, opt, {epoch + 1, history.dump()});
          std::string lines;
          for (const auto& r : history) lines += r.dump() + "\n";
          util::write_file_atomic(path_in(cfg_.out, "metrics.jsonl"), lines);
        }
        progress_open = false;
      }
    } catch (...) {
      if (progress_open) std::fputc('\n', stderr);
      throw;
    }

    RunResult r;
    r.dir = cfg_.out;
    r.spec = net->desc().spec;
    r.data = cfg_.data;
    r.input = in.shape.str();
    r.classes = in.classes;
    r.relus = totals.relus;
    r.flops = totals.flops;
    r.params = totals.params;
    r.epochs = cfg_.epochs;
    r.kd = teacher.has_value();
    r.seconds = seconds;
    r.mean.assign(split.train.mean.begin(), split.train.mean.end());
    r.std.assign(split.train.std.begin(), split.train.std.end());
    if (!history.empty()) {
      r.test_acc = history.back()["test_acc"];
      r.test_loss = history.back()["test_loss"];
    }
    if (rank0) {
      save_weights(net, path_in(cfg_.out, "weights.pt"));
      util::write_file_atomic(path_in(cfg_.out, "result.json"), r.to_json().dump(2) + "\n");
    }
    if (dist_) dist_->barrier();
    return r;
  }

 private:
  TrainConfig cfg_;
  Distributed* dist_;
};

}  // namespace

void set_threads(int threads) {
  const int n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  if (torch::get_num_threads() != n) torch::set_num_threads(n);
}

nlohmann::json RunResult::to_json() const {
  return {{"dir", dir},       {"spec", spec},     {"data", data},         {"input", input},
          {"classes", classes}, {"relus", relus}, {"flops", flops},       {"params", params},
          {"epochs", epochs}, {"test_acc", test_acc}, {"test_loss", test_loss},
          {"seconds", seconds}, {"kd", kd}, {"mean", mean}, {"std", std}};
}

RunResult RunResult::from_json(const nlohmann::json& j) {
  RunResult r;
  r.dir = j.value("dir", "");
  r.spec = j.at("spec");
  r.data = j.value("data", "");
  r.input = j.at("input");
  r.classes = j.at("classes");
  r.relus = j.at("relus");
  r.flops = j.value("flops", 0);
  r.params = j.value("params", 0);
  r.epochs = j.value("epochs", 0);
  r.test_acc = j.at("test_acc");
  r.test_loss = j.value("test_loss", 0.0);
  r.seconds = j.value("seconds", 0.0);
  r.kd = j.value("kd", false);
  r.mean = j.value("mean", std::vector<double>{});
  r.std = j.value("std", std::vector<double>{});
  return r;
}

std::optional<RunResult> finished_result(const std::string& dir) {
  const std::string p = path_in(dir, "result.json");
  if (!util::file_exists(p)) return std::nullopt;
  try {
    RunResult r = RunResult::from_json(read_json(p));
    r.dir = dir;
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + p + "' is not a deepreduce result: " + e.what());
  }
}

TrainConfig read_config(const std::string& dir) {
  const std::string p = path_in(dir, "config.json");
  if (!util::file_exists(p)) throw std::runtime_error("'" + dir + "' is not a run directory (no config.json)");
  TrainConfig c = TrainConfig::from_json(read_json(p));
  c.out = dir;
  return c;
}

RunResult train(const TrainConfig& cfg, Distributed* dist) {
  if (cfg.out.empty()) throw std::invalid_argument("--out DIR is required");
  if (util::file_exists(path_in(cfg.out, "config.json")))
    throw std::invalid_argument("'" + cfg.out + "' already holds a run; continue it with `deepreduce resume " +
                                cfg.out + "` or choose another --out");
  return Run(cfg, dist).execute(false);
}

RunResult resume(const std::string& dir, Distributed* dist, int threads) {
  if (auto r = finished_result(dir)) return *r;
  TrainConfig c = read_config(dir);
  if (threads > 0) c.threads = threads;
  return Run(c, dist).execute(true);
}

RunResult ensure(const TrainConfig& cfg, Distributed* dist) {
  if (auto r = finished_result(cfg.out)) return *r;
  if (util::file_exists(path_in(cfg.out, "config.json"))) return resume(cfg.out, dist, cfg.threads);
  return train(cfg, dist);
}

EvalResult evaluate(const std::string& dir, const std::string& data_source, int threads,
                    const std::string& device) {
  const auto result = finished_result(dir);
  if (!result) throw std::invalid_argument("'" + dir + "' is not a finished run (no result.json)");
  const TrainConfig cfg = read_config(dir);
  set_threads(threads);
  const torch::Device dev = pick_device(device);
  const std::string src = data_source.empty() ? cfg.data : data_source;
  data::DataSplit split = data::load_dataset(src, data_source.empty() ? cfg.limit : 0);
  const arch::InputSpec in = input_of(split.train);
  if (in.shape.str() != result->input || in.classes != result->classes)
    throw std::invalid_argument("data '" + src + "' gives " + in.shape.str() + " with " + std::to_string(in.classes) +
                                " classes; run '" + dir + "' was trained for " + result->input + " with " +
                                std::to_string(result->classes));
  // Normalise with the statistics the network was trained with.
  if (result->mean.size() == static_cast<size_t>(in.shape.c) && result->std.size() == result->mean.size()) {
    split.test.mean.assign(result->mean.begin(), result->mean.end());
    split.test.std.assign(result->std.begin(), result->std.end());
  }
  nn::Net net = nn::build(result->spec, in);
  load_into(net, load_weights(path_in(dir, "weights.pt")), true, "'" + dir + "/weights.pt'");
  net->to(dev);
  const EpochStats s = run_eval(net, split.test, dev, cfg.workers);
  return {result->spec, src, static_cast<int64_t>(s.images), net->desc().totals().relus,
          s.correct / std::max(1.0, s.images), s.loss / std::max(1.0, s.images)};
}

}  // namespace dr::train
