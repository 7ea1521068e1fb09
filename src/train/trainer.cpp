#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "arch/spec.h"
#include "data/dataset.h"
#include "data/device_batches.h"
#include "nn/net.h"
#include "train/common.h"
#include "train/distributed.h"
#include "train/engine.h"
#include "train/precision.h"
#include "train/provenance.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/run_lock.h"

namespace dr::train {

namespace {

using util::path_join;

// The files that make a directory a run: its masks.pt (copied from
// masks_from), then config.json (the resolved settings and where they ran),
// with the starting weights' path made absolute so a resume elsewhere finds it.
// config.json records masks.pt's SHA-256 (checked wherever the run's masks
// are loaded: load_run_masks), and result.json's settings digest covers it.
void write_new_run(TrainConfig& cfg) {
  std::string masks_sha256;
  if (!cfg.masks_from.empty()) {
    const std::string masks = util::read_file(cfg.masks_from);
    util::write_file_atomic(path_join(cfg.out, "masks.pt"), masks);
    masks_sha256 = util::sha256_hex(masks);
  }
  cfg = as_recorded(std::move(cfg));
  nlohmann::json j = cfg.to_json();
  if (!masks_sha256.empty()) j["masks_sha256"] = masks_sha256;
  j["provenance"] = provenance(cfg.device, cfg.threads);
  util::write_file_atomic(path_join(cfg.out, "config.json"), j.dump(2) + "\n");
}

// One training run: set-up (data, network, teacher, optimiser, resume state),
// then per epoch the training steps (on the TrainingEngine) and the record
// (test, checkpoint, metrics), then the result files.
class Run final : private TrainingHooks {
 public:
  Run(TrainConfig cfg, Distributed* dist) : cfg_(std::move(cfg)), dist_(dist), rank0_(!dist || dist->rank() == 0) {}

  RunResult execute(bool resuming) {
    setup(resuming);
    try {
      for (int64_t epoch = start_; epoch < cfg_.epochs; ++epoch) record(epoch, train_epoch(epoch));
    } catch (...) {
      if (engine_) engine_->end_progress_line();  // the error starts a line of its own
      throw;
    }
    return finish();
  }

 private:
  struct Trained {
    TrainedEpoch steps;
    double lr = 0;  // the epoch's peak rate
  };

  void setup(bool resuming);
  void build_model();
  void restore(bool resuming);
  Trained train_epoch(int64_t epoch);
  void record(int64_t epoch, const Trained& t);
  RunResult finish();
  // TrainingHooks: the schedule's lr per step, the run's messages.
  void before_step(int64_t epoch, int64_t step, int64_t steps) override;
  std::string diverged(double loss, int64_t epoch, int64_t step) const override;
  std::string progress_line(const StepProgress& p) override;

  TrainConfig cfg_;
  Distributed* dist_;
  bool rank0_;
  torch::Device dev_ = torch::kCPU;
  data::DataSplit split_;
  arch::InputSpec in_;
  nn::Net net_{nullptr};
  std::optional<nn::Net> teacher_;
  std::unique_ptr<torch::optim::SGD> opt_;
  std::unique_ptr<data::Batches> loader_;
  std::unique_ptr<Precision> precision_;
  std::unique_ptr<CoreSharing> cores_;
  std::unique_ptr<TrainingEngine> engine_;
  nlohmann::json history_ = nlohmann::json::array();
  int64_t start_ = 0;
  double seconds_ = 0;  // training time of all finished epochs, over resumes
};

void Run::setup(bool resuming) {
  validate_before_data(cfg_);
  if (dist_) dist_->check_same_settings(cfg_.result_settings());
  set_threads(cfg_.threads);
  cores_ = std::make_unique<CoreSharing>(cfg_.threads);
  dev_ = resolve_device(cfg_.device);
  precision_ = std::make_unique<Precision>(cfg_.precision, dev_);
  const std::string precision_warning = precision_->warning();
  if (rank0_ && !precision_warning.empty()) std::cerr << precision_warning << "\n";
  const auto t_load = Clock::now();
  split_ = data::load_dataset(cfg_.data, cfg_.limit);
  in_ = input_of(split_.train);
  if (rank0_)
    std::cerr << "data " << cfg_.data << ": " << split_.train.size() << " train, " << split_.test.size()
              << " test images " << in_.shape.str() << ", " << in_.classes << " classes ("
              << hms(seconds_since(t_load)) << " to load)\n";
  build_model();
  restore(resuming);
  loader_ = train_batches(cfg_, split_.train, dev_, dist_ ? dist_->rank() : 0, dist_ ? dist_->world() : 1);
  engine_ = std::make_unique<TrainingEngine>(
      EngineParts{net_, teacher_ ? &*teacher_ : nullptr, opt_.get(), loader_.get(), precision_.get(), dist_,
                  cores_.get(), dev_, cfg_.batch, split_.train.size(), cfg_.kd_T, cfg_.kd_lambda, cfg_.clip_grad},
      static_cast<TrainingHooks&>(*this));
  const arch::Totals totals = net_->desc().totals();
  if (rank0_)
    std::cerr << "model " << net_->desc().spec << ": " << totals.relus << " ReLUs, "
              << (totals.polys > 0 ? std::to_string(totals.polys) + " polynomial elements, " : std::string())
              << totals.params << " params; "
              << (teacher_ ? "KD from " + cfg_.teacher : std::string("no KD")) << "; " << cfg_.epochs
              << " epochs on " << (dev_.is_cuda() ? "cuda" : "cpu") << " in " << cfg_.precision << " with "
              << torch::get_num_threads() << " threads"
              << (cores_->on() ? " (the cores shared among the deepreduce jobs of this machine)" : "") << "; batches made on the "
              << data::batches_kind(split_.train, cfg_.data_path) << "\n";
}

void Run::build_model() {
  torch::manual_seed(cfg_.seed);
  net_ = nn::Net(config_network(cfg_, in_));
  net_->init_parameters(cfg_.weight_init, cfg_.zero_init_residual);
  if (!cfg_.teacher.empty()) teacher_ = load_teacher(cfg_.teacher, in_, dev_);
  if (cfg_.init == "teacher") {
    const int n = load_into(net_, load_run_weights(cfg_.teacher), false, "teacher weights");
    if (rank0_) std::cerr << "init: " << n << " tensors copied from teacher " << cfg_.teacher << "\n";
  }
  if (!cfg_.init_weights.empty())
    load_into(net_, load_weights(cfg_.init_weights), true, "starting weights '" + cfg_.init_weights + "'");
  net_->to(dev_);
  if (dist_) {
    dist_->broadcast_parameters(net_);
    dist_->sync_batch_norm(net_);
  }
  opt_ = std::make_unique<torch::optim::SGD>(
      net_->parameters(),
      torch::optim::SGDOptions(cfg_.lr).momentum(cfg_.momentum).nesterov(cfg_.nesterov).weight_decay(cfg_.wd));
}

// A resumed run continues from its checkpoint; a new one writes config.json
// (the resolved settings and where they ran).
void Run::restore(bool resuming) {
  const std::string ckpt = path_join(cfg_.out, "checkpoint.pt");
  cfg_.pad = cfg_.pad_for(in_.shape.h);  // config.json records the padding used
  if (resuming && util::file_exists(ckpt)) {
    const Checkpoint c = load_checkpoint(ckpt, net_, *opt_, cfg_.result_settings().dump());
    start_ = c.epochs_done;
    history_ = nlohmann::json::parse(c.metrics);
    if (!history_.empty()) seconds_ = history_.back().value("total_seconds", 0.0);
    if (rank0_) {
      std::cerr << "resuming " << cfg_.out << " after epoch " << start_ << "\n";
      write_metrics(cfg_.out, history_);  // a kill between the checkpoint and the metrics file lost no line
    }
  }
  if (rank0_ && !resuming) write_new_run(cfg_);
}

Run::Trained Run::train_epoch(int64_t epoch) {
  Trained t;
  // The epoch's peak rate: at its start, or at its end while warming up.
  t.lr = std::max(lr_at(cfg_, static_cast<double>(epoch)), lr_at(cfg_, static_cast<double>(epoch + 1) - 1e-9));
  t.steps = engine_->train_epoch(epoch);
  return t;
}

void Run::before_step(int64_t epoch, int64_t step, int64_t steps) {
  const double step_lr = lr_at(cfg_, epoch + static_cast<double>(step) / std::max<int64_t>(1, steps));
  for (auto& g : opt_->param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(step_lr);
}

std::string Run::diverged(double loss, int64_t epoch, int64_t step) const {
  return "training of '" + cfg_.model + "' diverged (loss " + std::to_string(loss) + ") at epoch " +
         std::to_string(epoch + 1) + " by step " + std::to_string(step + 1) + "; the last finished epoch is kept in " +
         cfg_.out + ". Try a lower --lr" + (teacher_ ? " or --kd-lambda" : "") + ".";
}

std::string Run::progress_line(const StepProgress& p) {
  const double per_step = p.elapsed_s / static_cast<double>(p.step + 1);
  const double left = static_cast<double>(p.steps - p.step - 1) * per_step +
                      static_cast<double>(cfg_.epochs - p.epoch - 1) * per_step * static_cast<double>(p.steps);
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s   ",
                (long long)p.epoch + 1, (long long)cfg_.epochs, (long long)p.step + 1, (long long)p.steps, p.loss, p.acc,
                p.images_per_s, hms(left).c_str());
  return buf;
}

// Tests the epoch's network, then commits the epoch: checkpoint first, then
// the metrics file rebuilt from the history the checkpoint holds, so a kill
// at any point loses no finished epoch and leaves no duplicate line.
void Run::record(int64_t epoch, const Trained& t) {
  const EpochStats te = run_eval(net_, split_.test, dev_, cfg_.workers, cfg_.data_path);
  const TrainedEpoch& e = t.steps;
  const double epoch_s = seconds_since(e.start);
  seconds_ += epoch_s;
  const double images = std::max(1.0, e.stats.images);
  nlohmann::json rec = {{"epoch", epoch + 1},
                        {"lr", t.lr},
                        {"train_loss", e.stats.loss / images},
                        {"train_acc", e.stats.correct / images},
                        {"test_loss", te.loss / std::max(1.0, te.images)},
                        {"test_acc", te.correct / std::max(1.0, te.images)},
                        {"images_per_s", e.stats.images / e.seconds},
                        {"compute_images_per_s", e.stats.images / std::max(1e-9, e.seconds - e.wait)},
                        {"data_wait_s", e.wait},
                        {"seconds", epoch_s},
                        {"total_seconds", seconds_}};
  history_.push_back(rec);
  engine_->end_progress_line(false);  // the epoch's line below replaces it
  if (!rank0_) return;
  std::fprintf(stderr, "\repoch %lld/%lld train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.0f img/s | %s\n",
               (long long)epoch + 1, (long long)cfg_.epochs, rec["train_loss"].get<double>(),
               rec["train_acc"].get<double>(), rec["test_loss"].get<double>(), rec["test_acc"].get<double>(),
               rec["images_per_s"].get<double>() * (dist_ ? dist_->world() : 1), hms(epoch_s).c_str());
  save_checkpoint(path_join(cfg_.out, "checkpoint.pt"), net_, *opt_,
                  {epoch + 1, history_.dump(), cfg_.result_settings().dump(), {}, ""});
  kill_point_after_checkpoint(epoch + 1);
  write_metrics(cfg_.out, history_);
}

RunResult Run::finish() {
  const arch::Totals totals = net_->desc().totals();
  RunResult r;
  r.dir = cfg_.out;
  r.spec = net_->desc().spec;
  r.data = cfg_.data;
  r.input = in_.shape.str();
  r.classes = in_.classes;
  r.relus = totals.relus;
  r.flops = totals.flops;
  r.params = totals.params;
  r.epochs = cfg_.epochs;
  r.kd = teacher_.has_value();
  r.seconds = seconds_;
  r.mean.assign(split_.train.mean.begin(), split_.train.mean.end());
  r.std.assign(split_.train.std.begin(), split_.train.std.end());
  if (!history_.empty()) {
    r.test_acc = history_.back()["test_acc"];
    r.test_loss = loss_from_json(history_.back()["test_loss"]);
  }
  // Where and when it finished; the run's start (config.json's provenance,
  // written when the run began) is what result.json's provenance records.
  nlohmann::json finished = provenance(cfg_.device, cfg_.threads);
  finished["time"] = finished["started"];
  finished.erase("started");
  r.provenance = finished;
  if (rank0_) {
    const nlohmann::json config = nlohmann::json::parse(util::read_file(path_join(cfg_.out, "config.json")));
    r.settings_sha256 = settings_sha256(config);
    if (config.contains("provenance") && config["provenance"].is_object()) {
      r.provenance = config["provenance"];
      r.provenance["finished"] = finished;
    }
    r.weights_sha256 = save_weights(net_, path_join(cfg_.out, "weights.pt"));
    write_result(r);
  }
  if (dist_) dist_->barrier();
  return r;
}

}  // namespace

void set_threads(int threads) {
  check_threads("--threads", threads);
  // 0: the cores this process may use (its affinity, e.g. under taskset or a
  // cluster's cgroup), not every core of the machine.
  const int n = threads > 0 ? threads : max_threads();
  if (torch::get_num_threads() != n) torch::set_num_threads(n);
}

torch::Device resolve_device(const std::string& want) {
  if (want == "cuda" && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: this LibTorch has no CUDA device (accepted here: cpu, auto)");
  if (want == "cuda" || (want == "auto" && torch::cuda::is_available())) {
    // cuDNN times its algorithms for each new convolution shape once and
    // keeps the fastest (torch.backends.cudnn.benchmark): a run's shapes are
    // fixed, so the first step pays for every later one.
    at::globalContext().setBenchmarkCuDNN(true);
    return torch::kCUDA;
  }
  return torch::kCPU;
}

void validate_before_data(const TrainConfig& cfg) {
  cfg.validate();
  arch::InputSpec in = arch::parse_source(cfg.data).input;
  config_network(cfg, in);  // the spec, and the masks when the run has them
  if (!cfg.init_weights.empty() && !util::file_exists(cfg.init_weights))
    throw std::invalid_argument("starting weights '" + cfg.init_weights + "' do not exist");
  // The class count is known once the data is read (a TinyImageNet folder may
  // hold fewer classes than the full set's 200); the shape is known now.
  in.classes = 0;
  if (!cfg.teacher.empty()) check_teacher(cfg.teacher, in);
}

namespace {

// The writer's lock on a run directory, taken before any of its files is
// checked or written (two trains on one --out cannot both find it empty).
// Data-parallel: rank 0 writes the files and holds it for all ranks.
std::unique_ptr<util::RunLock> lock_run_dir(const std::string& dir, Distributed* dist) {
  if (dist && dist->rank() != 0) return nullptr;
  return std::make_unique<util::RunLock>(dir);
}

// Takes the lock, then checks that --out holds nothing (but the lock).
std::unique_ptr<util::RunLock> lock_new_run_dir(const std::string& out, Distributed* dist) {
  std::error_code ec;
  if (out.empty()) throw std::invalid_argument("--out DIR is required");
  if (std::filesystem::exists(out, ec) && !std::filesystem::is_directory(out, ec))
    throw std::invalid_argument("--out '" + out + "' is a file, not a directory: choose a new or empty directory");
  auto lock = lock_run_dir(out, dist);
  if (util::file_exists(path_join(out, "config.json")))
    throw std::invalid_argument("'" + out + "' already holds a run; continue it with `deepreduce resume " + out +
                                "` or choose another --out");
  if (!util::is_empty_but_lock(out))
    throw std::invalid_argument("--out '" + out + "' is not empty and holds no deepreduce run (no config.json): "
                                "choose a new or empty directory");
  return lock;
}

}  // namespace

TrainConfig as_recorded(TrainConfig cfg) {
  if (cfg.pad < 0) cfg.pad = cfg.pad_for(arch::parse_source(cfg.data).input.shape.h);
  if (!cfg.masks_from.empty()) cfg.masked = true, cfg.masks_from.clear();
  if (!cfg.init_weights.empty()) cfg.init_weights = std::filesystem::absolute(cfg.init_weights).string();
  return cfg;
}

void prepare_run(TrainConfig cfg) {
  const auto lock = lock_new_run_dir(cfg.out, nullptr);
  validate_before_data(cfg);
  write_new_run(cfg);
}

RunResult train(const TrainConfig& cfg, Distributed* dist) {
  const auto lock = lock_new_run_dir(cfg.out, dist);
  return Run(cfg, dist).execute(false);
}

RunResult resume(const std::string& dir, Distributed* dist, int threads) {
  if (auto r = verified_result(dir)) return *r;  // its files agree, its weights are intact
  // Locked before config.json is read: a train that holds the directory may
  // not have written it yet.
  const auto lock = lock_run_dir(dir, dist);
  if (auto r = verified_result(dir)) return *r;  // finished by the writer before us
  TrainConfig c = read_config(dir);
  if (!dist || dist->rank() == 0) util::remove_stale_temporaries(dir);
  if (threads > 0) c.threads = threads;
  return Run(c, dist).execute(true);
}

RunResult ensure(const TrainConfig& cfg, Distributed* dist) {
  if (auto r = verified_result(cfg.out)) return *r;
  if (util::file_exists(path_join(cfg.out, "config.json"))) return resume(cfg.out, dist, cfg.threads);
  return train(cfg, dist);
}

EvalResult evaluate(const std::string& dir, const std::string& data_source, int threads, const std::string& device) {
  const std::optional<RunResult> result = require_finished(dir);
  // The run's files, network and weights are checked before any data is read.
  nn::Net net(run_network(dir));                    // its ReLUs are those result.json records
  const StateDict weights = load_run_weights(dir);  // weights.pt against result.json's SHA-256
  load_into(net, weights, true, "'" + dir + "/weights.pt'");
  const TrainConfig cfg = read_config(dir);
  EvalSetup s{data_source.empty() ? cfg.data : data_source, data_source.empty() ? cfg.limit : 0, {}, {}, threads, device,
              cfg.workers};
  // Normalise with the statistics the network was trained with.
  if (result->mean.size() == result->std.size()) s.mean = result->mean, s.std = result->std;
  return evaluate_net(net, result->spec, "run '" + dir + "' was trained for", s);
}

void check_normalisation(const std::vector<double>& mean, const std::vector<double>& stdev, int64_t channels) {
  for (const auto& [v, name] : {std::pair{&mean, "--mean"}, std::pair{&stdev, "--std"}}) {
    if (v->empty()) continue;
    if (static_cast<int64_t>(v->size()) != channels)
      throw std::invalid_argument(std::string(name) + " has " + std::to_string(v->size()) + " values for " +
                                  std::to_string(channels) + " channels");
    if (v == &stdev && std::any_of(v->begin(), v->end(), [](double x) { return !(x > 0); }))
      throw std::invalid_argument("--std values must be positive");
  }
}

EvalResult evaluate_net(nn::Net& net, const std::string& spec, const std::string& owner, const EvalSetup& s) {
  set_threads(s.threads);
  const torch::Device dev = resolve_device(s.device);
  data::DataSplit split = data::load_dataset(s.data, s.limit);
  const arch::InputSpec in = input_of(split.train);
  const arch::Network& desc = net->desc();
  if (!(in.shape == desc.input) || in.classes != desc.classes)
    throw std::invalid_argument("data '" + s.data + "' gives " + in.shape.str() + " with " + std::to_string(in.classes) +
                                " classes; " + owner + " " + desc.input.str() + " with " + std::to_string(desc.classes));
  check_normalisation(s.mean, s.std, in.shape.c);
  if (!s.mean.empty()) split.test.mean.assign(s.mean.begin(), s.mean.end());
  if (!s.std.empty()) split.test.std.assign(s.std.begin(), s.std.end());
  net->to(dev);
  const EpochStats e = run_eval(net, split.test, dev, s.workers);
  const arch::Totals totals = desc.totals();
  return {spec, s.data, static_cast<int64_t>(e.images), totals.relus, e.correct / std::max(1.0, e.images),
          e.loss / std::max(1.0, e.images), totals.polys};
}

}  // namespace dr::train
