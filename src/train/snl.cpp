#include "train/snl.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "arch/spec.h"
#include "arch/relu_site.h"
#include "train/common.h"
#include "train/distributed.h"
#include "train/engine.h"
#include "train/masks.h"
#include "train/provenance.h"
#include "train/search_sites.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/run_lock.h"

namespace dr::train {

namespace {

using util::path_join;

std::string snapshot_dir(const std::string& out, int64_t budget) {
  return path_join(path_join(out, "snapshots"), std::to_string(budget));
}

// What a killed search left half-written (metrics.jsonl.tmp.PID, a
// snapshot's masks.pt.tmp.PID, ...), as a run's resume removes its own.
void remove_stale_temporaries(const std::string& out) {
  util::remove_stale_temporaries(out);
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(path_join(out, "snapshots"), ec))
    if (d.is_directory(ec)) util::remove_stale_temporaries(d.path().string());
}

// Leaves out the fields of TrainConfig only SGD training reads: not the search's.
void erase_sgd_only(nlohmann::json& j) {
  for (const Setting& f : train_settings())
    if (f.group == Setting::Sgd) j.erase(f.key);
}

// The settings a resumed search must share with its checkpoint: all but the
// most epochs and the loss-spike rule (rules of when to stop or go back: a
// search may go on with others) and how fast it runs.
nlohmann::json compared_settings(const SnlOptions& o) {
  nlohmann::json j = o.to_json();
  j.erase("loss_spike");
  // SNL's searches recorded before polynomial replacement existed compare as before.
  if (o.replace == "identity") j.erase("replace"), j.erase("hysteresis"), j.erase("removed"), j.erase("flip_rate");
  if (o.granularity == "element") j.erase("granularity");  // as searches from before the option
  j["train"] = o.train.result_settings();
  j["train"].erase("epochs");
  erase_sgd_only(j["train"]);
  return j;
}

}  // namespace

SnlOptions SnlOptions::defaults() {
  SnlOptions o;
  o.train.lr = 1e-3;
  o.train.batch = 128;
  o.train.epochs = 2000;
  o.train.kd_T = 4;
  o.train.kd_lambda = 1.0;  // SNL: CE + KD
  return o;
}

namespace {

std::vector<SearchSetting> make_search_table() {
  using O = SnlOptions;
  using C = TrainConfig;
  std::vector<SearchSetting> table = {
      {"lr", "search-lr", "Adam learning rate of the search (weights and masks)", &C::lr, 0, 100, true},
      {"max_epochs", "search-epochs", "Most epochs of the mask search (it stops at the last budget)", &C::epochs, 1,
       kMaxEpochs},
      {"kd_lambda", "search-kd-lambda", "Weight of the KD term during the search", &C::kd_lambda, 0, 1000},
      {"lasso", "lasso", "L1 weight on the masks at the start", &O::lasso, 0, 1, true},
      {"lasso_growth", "lasso-growth", "Factor on the L1 weight after an epoch without a new low", &O::lasso_growth, 1,
       10},
      {"patience_from", "lasso-patience", "First epoch after which the L1 weight may grow", &O::patience_from, 0,
       kMaxEpochs},
      {"threshold", "threshold", "A mask value above this counts as a live ReLU", &O::threshold, 0, 1, true, true},
  };
  // A row newer than the first searches (flag = key) choosing among `choices`.
  auto newer_choice = [](const char* key, const char* help, std::string O::*member, std::vector<std::string> choices) {
    SearchSetting row{key, key, help, member};
    row.choices = std::move(choices);
    row.recorded_always = false;
    return row;
  };
  // What a removed ReLU becomes: rows newer than the first searches.
  SearchSetting replace = newer_choice("replace",
                                       "What a removed ReLU becomes: identity (SNL) or poly (a trained per-channel "
                                       "quadratic a*x^2 + b*x + c, AutoReP-style)",
                                       &O::replace, {"identity", "poly"});
  replace.per_method = true;
  SearchSetting band{"hysteresis", "hysteresis",
                     "poly: the indicator's band around --threshold (an element's choice flips only past it)",
                     &O::hysteresis, 0, 1, false, true};
  band.recorded_always = false;
  SearchSetting spike{"loss_spike", "loss-spike",
                      "Go back to the last epoch with Adam's lr halved when an epoch's task loss reaches this many "
                      "times the last epoch's (at most 3 times; 0: off)",
                      &O::loss_spike, 0, 1000};
  spike.recorded_always = false;
  const SearchSetting granularity =
      newer_choice("granularity",
                   "element (a mask per ReLU element) or channel (per channel: whole channels kept, at most the "
                   "budget's ReLUs)",
                   &O::granularity, {"element", "channel"});
  const SearchSetting removed =
      newer_choice("removed",
                   "poly: may-return (AutoReP's loop: a replaced element is a ReLU again when its score passes the "
                   "band's top) or stay (once replaced by the quadratic, replaced)",
                   &O::removed, {"may-return", "stay"});
  SearchSetting pace{"flip_rate", "flip-rate",
                     "poly: the most indicators one step flips each way, as a fraction of the live ReLUs (lowest "
                     "scores fall first, highest rise first; the others wait); 0: no limit (AutoReP's loop as published)",
                     &O::flip_rate, 0, 1};
  pace.recorded_always = false;
  pace.before = 0.0;  // searches from before the pacing flipped every element past the band at once
  table.push_back(replace);
  table.push_back(granularity);
  table.push_back(band);
  table.push_back(removed);
  table.push_back(pace);
  table.push_back(spike);
  return table;
}

}  // namespace

const std::vector<SearchSetting>& search_settings() {
  static const std::vector<SearchSetting> table = make_search_table();
  return table;
}

nlohmann::json search_settings_json(const SnlOptions& o) {
  nlohmann::json j = {{"optimizer", "adam"}};
  for (const SearchSetting& s : search_settings())
    std::visit([&](auto m) { j[s.key] = setting_value(o, m); }, s.member);
  return j;
}

namespace {

// The rows whose fields are SnlOptions' own (config.json records them beside "train").
template <class F>
void for_own_settings(F f) {
  for (const SearchSetting& s : search_settings())
    std::visit(
        [&](auto m) {
          if constexpr (std::is_same_v<decltype(m), double SnlOptions::*> ||
                        std::is_same_v<decltype(m), int64_t SnlOptions::*> ||
                        std::is_same_v<decltype(m), std::string SnlOptions::*>)
            f(s, m);
        },
        s.member);
}

}  // namespace

nlohmann::json SnlOptions::to_json() const {
  nlohmann::json t = train.to_json();
  erase_sgd_only(t);
  t["optimizer"] = "adam";
  nlohmann::json j = {{"train", t}, {"start_run", start_run}, {"budgets", budgets}, {"method", "snl"}};
  for_own_settings([&](const SearchSetting& s, auto m) { j[s.key] = this->*m; });
  return j;
}

SnlOptions SnlOptions::from_json(const nlohmann::json& j) {
  SnlOptions o;
  try {
    o.train = TrainConfig::from_json(j.at("train"));
    o.start_run = j.value("start_run", "");
    o.budgets = j.at("budgets").get<std::vector<int64_t>>();
    for_own_settings([&](const SearchSetting& s, auto m) {
      if (s.recorded_always || j.contains(s.key))
        j.at(s.key).get_to(o.*m);
      else if constexpr (std::is_same_v<decltype(m), double SnlOptions::*>)
        if (s.before) o.*m = *s.before;
    });
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("bad SNL search config: ") + e.what());
  }
  return o;
}

void check_budget_list(const std::vector<int64_t>& budgets) {
  if (budgets.empty()) throw std::invalid_argument("--budget needs at least one ReLU budget (e.g. 50K,20K)");
}

arch::InputSpec input_before_data(const std::string& data) {
  const arch::DataSource src = arch::parse_source(data);
  arch::InputSpec in = src.input;
  if (src.info->loader == "jpeg-folders") in.classes = 0;  // its wnids.txt decides
  return in;
}

void check_run_for_data(const std::string& dir, const std::string& role, const std::string& data) {
  check_run_input(dir, role, input_before_data(data), "--data " + data);
}

bool is_masked_run(const std::string& dir) { return read_config(dir).masked; }

void SnlOptions::validate_settings(const std::string& prefix) const {
  for (const SearchSetting& s : search_settings())
    std::visit(
        [&](auto m) {
          const auto& v = setting_value(*this, m);
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>)
            check_choice(prefix + s.flag, v, s.choices);
          else if constexpr (std::is_integral_v<T>)
            check_integer(prefix + s.flag, v, static_cast<int64_t>(s.lo), static_cast<int64_t>(s.hi));
          else
            check_number(prefix + s.flag, v, s.lo, s.hi, s.lo_open, s.hi_open);
        },
        s.member);
  if (loss_spike > 0 && loss_spike <= 1) {
    std::ostringstream m;
    m << prefix << "loss-spike must be 0 (off) or a factor above 1 (got " << loss_spike << ")";
    throw std::invalid_argument(m.str());
  }
}

void SnlOptions::validate(const std::string& prefix) const {
  validate_settings(prefix);
  train.validate();  // the settings shared with the fine-tunes (data, batch, threads, ...)
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (train.teacher.empty()) bad("the SNL search needs a teacher (--teacher RUN)");
  check_budget_list(budgets);
  const arch::InputSpec in = arch::parse_source(train.data).input;
  const int64_t start = arch::build_network(train.model, in).totals().relus;
  for (int64_t b : budgets)
    if (b < 1 || b >= start)
      bad("budget " + std::to_string(b) + " is not below the " + std::to_string(start) + " ReLUs of the starting network " +
          arch::parse_spec(train.model).canonical() + " (budgets must be in 1.." + std::to_string(start - 1) + ")");
  check_run_for_data(train.teacher, "teacher", train.data);
  if (is_masked_run(train.teacher))
    bad("teacher '" + train.teacher + "' is a masked run (its ReLUs are pixel masks, e.g. an SNL result): the SNL "
        "search needs an all-ReLU teacher (a `deepreduce train` run)");
  if (!start_run.empty()) {
    check_run_for_data(start_run, "--from run", train.data);
    if (is_masked_run(start_run))
      bad("--from run '" + start_run + "' is a masked run (pixel masks from an earlier SNL): the search starts from "
          "an unmasked network (every ReLU of its spec live); give that network's run or its spec");
    if (finished_result(start_run)->spec != arch::parse_spec(train.model).canonical())
      bad("--from run '" + start_run + "' holds " + finished_result(start_run)->spec + ", not " + train.model);
  }
}

nlohmann::json SnlResult::to_json() const {
  nlohmann::json s = nlohmann::json::array();
  for (const auto& x : snapshots)
    s.push_back({{"budget", x.budget}, {"epoch", x.epoch}, {"live_at", x.live_at}, {"dir", x.dir}});
  return {{"snapshots", s}, {"epochs", epochs}, {"complete", complete}};
}

SnlResult SnlResult::from_json(const nlohmann::json& j) {
  SnlResult r;
  for (const auto& x : j.at("snapshots"))
    r.snapshots.push_back({x.at("budget"), x.at("epoch"), x.at("live_at"), x.at("dir")});
  r.epochs = j.at("epochs");
  r.complete = j.at("complete");
  return r;
}

std::optional<SnlResult> finished_search(const std::string& dir) {
  const std::string p = path_join(dir, "result.json");
  if (!util::file_exists(p)) return std::nullopt;
  try {
    return SnlResult::from_json(nlohmann::json::parse(util::read_file(p)));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + p + "' is not an SNL search result: " + e.what());
  }
}

SearchForecast forecast_search(const std::vector<SearchSample>& samples, const std::vector<int64_t>& pending,
                               double first_fall) {
  SearchForecast f;
  if (samples.empty()) return f;
  const SearchSample &a = samples.front(), &z = samples.back();
  const double span = z.epoch - a.epoch;
  const double per_epoch = span > 0 ? (z.seconds - a.seconds) / span : std::nan("");
  f.rate = span > 0 ? static_cast<double>(a.live - z.live) / span : 0;
  std::vector<int64_t> budgets = pending;
  std::sort(budgets.begin(), budgets.end(), std::greater<>());
  for (int64_t b : budgets) {
    BudgetForecast g{b, z.epoch, 0, false};  // at or below it: reached at this epoch's end
    if (z.live > b && f.rate > 0)
      g.epoch = z.epoch + static_cast<double>(z.live - b) / f.rate;
    else if (z.live > b && z.epoch < first_fall)
      g.epoch = first_fall, g.at_least = true;
    else if (z.live > b)
      g.epoch = std::numeric_limits<double>::infinity();
    g.seconds = g.epoch == z.epoch ? 0 : (g.epoch - z.epoch) * per_epoch;
    f.budgets.push_back(g);
  }
  return f;
}

namespace {

// "5000 at epoch >= 41 (in >= 0:15:00)", "5000: not at this rate".
std::string budget_text(const BudgetForecast& g) {
  char buf[200];
  const char* bound = g.at_least ? ">= " : "";
  if (std::isinf(g.epoch)) {
    std::snprintf(buf, sizeof buf, "%lld: not at this rate", (long long)g.budget);
    return buf;
  }
  std::snprintf(buf, sizeof buf, g.epoch < 1e7 ? "%lld at epoch %s%.0f" : "%lld at epoch %s%.3g", (long long)g.budget,
                bound, std::ceil(g.epoch - 1e-9));  // a snapshot is taken at an epoch's end
  std::string out = buf;
  if (std::isfinite(g.seconds)) out += std::string(" (in ") + bound + (g.seconds < 1e8 ? hms(g.seconds) : "years") + ")";
  return out;
}

}  // namespace

std::string forecast_text(const SearchForecast& f, size_t most) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f.rate > 0 ? "-%.0f/epoch" : "not falling yet", f.rate);
  std::string out = buf;
  const size_t n = most == 0 ? f.budgets.size() : std::min(most, f.budgets.size());
  for (size_t i = 0; i < n; ++i) out += (i == 0 ? "; " : ", ") + budget_text(f.budgets[i]);
  return out;
}

namespace {

// The search trains its epochs on the TrainingEngine (engine.h) with KD from
// the teacher and the lasso term as the hooks' extra loss. Data-parallel
// (dist): every rank holds the same weights and masks (the engine averages
// the gradients of both), so every rank takes the same lasso steps and
// snapshot decisions; rank 0 alone writes the search directory and prints.
class Search final : private TrainingHooks {
 public:
  Search(SnlOptions o, Distributed* dist)
      : o_(std::move(o)), cfg_(o_.train), dist_(dist), rank0_(!dist || dist->rank() == 0) {}

  SnlResult run() {
    setup();
    try {
      for (int64_t epoch = start_; epoch < cfg_.epochs && !complete(); ++epoch) {
        try {
          end_epoch(epoch, engine_->train_epoch(epoch));
        } catch (const LossSpike& spike) {
          epoch = roll_back(spike) - 1;  // the epoch again, from the last one's checkpoint
        }
      }
    } catch (...) {
      if (engine_) engine_->end_progress_line();
      throw;
    }
    return finish();
  }

 private:
  // An epoch stopped by the loss-spike rule (SnlOptions::loss_spike).
  struct LossSpike {
    double mean;
    int64_t epoch, step;
  };
  void setup();
  void build_network();
  void restore();
  void load_state();
  int64_t roll_back(const LossSpike& spike);
  void set_lr();
  void end_epoch(int64_t epoch, const TrainedEpoch& e);
  void take_snapshot(int64_t budget, int64_t epoch, int64_t live);
  int64_t live() const { return sites_->live(o_.threshold); }
  std::vector<int64_t> pending() const;  // the budgets without a snapshot yet, in the given order
  bool complete() const { return pending().empty(); }
  void save_state(int64_t epochs_done);
  SearchForecast look(double at, int64_t live_now);
  void warn_if_far(const SearchForecast& f, double at, int64_t live_now);
  SnlResult finish();
  // TrainingHooks: the sites' step (the indicators' hysteresis), the lasso term, the search's messages.
  void before_step(int64_t, int64_t, int64_t) override { sites_->before_step(o_.threshold); }
  torch::Tensor extra_loss() override { return lasso_ * sites_->l1(); }
  std::string diverged(double loss, int64_t epoch, int64_t step) const override;
  void check_task_loss(double mean, int64_t epoch, int64_t step) override;
  std::string progress_line(const StepProgress& p) override;

  SnlOptions o_;
  TrainConfig& cfg_;
  Distributed* dist_;
  bool rank0_;
  torch::Device dev_ = torch::kCPU;
  data::DataSplit split_;
  arch::InputSpec in_;
  nn::Net net_{nullptr};
  nn::Net teacher_{nullptr};
  std::unique_ptr<SearchSites> sites_;  // what it learns at each ReLU site (search_sites.h)
  std::unique_ptr<torch::optim::Adam> opt_;
  std::unique_ptr<data::Batches> loader_;
  std::unique_ptr<Precision> precision_;  // fp32: --precision is for the fine-tunes
  std::unique_ptr<CoreSharing> cores_;
  std::unique_ptr<TrainingEngine> engine_;
  nlohmann::json history_ = nlohmann::json::array();
  int64_t start_ = 0, best_live_ = 0;
  double lasso_ = 0, seconds_ = 0;
  // The loss-spike rule: Adam's lr is cfg_.lr x lr_scale_, halved at each of the rollbacks_.
  double lr_scale_ = 1;
  int rollbacks_ = 0;
  SnlResult result_;
  // The looks at the last two epochs (the forecast's recent rate), since t0_.
  std::vector<SearchSample> looks_;
  Clock::time_point t0_ = Clock::now();
  int64_t start_relus_ = 0;  // every ReLU of the starting network
  bool warned_ = false;
};

void Search::setup() {
  o_.validate();
  if (dist_) dist_->check_same_settings(compared_settings(o_));
  set_threads(cfg_.threads);
  cores_ = std::make_unique<CoreSharing>(cfg_.threads);
  dev_ = resolve_device(cfg_.device);
  precision_ = std::make_unique<Precision>("fp32", dev_);
  split_ = data::load_dataset(cfg_.data, cfg_.limit);
  in_ = input_of(split_.train);
  cfg_ = as_recorded(cfg_);  // crop padding resolved, as a run records it
  build_network();
  restore();
  loader_ = train_batches(cfg_, split_.train, dev_, dist_ ? dist_->rank() : 0, dist_ ? dist_->world() : 1);
  engine_ = std::make_unique<TrainingEngine>(
      EngineParts{net_, &teacher_, opt_.get(), loader_.get(), precision_.get(), dist_, cores_.get(), dev_,
                  cfg_.batch, split_.train.size(), cfg_.kd_T, cfg_.kd_lambda, cfg_.clip_grad},
      static_cast<TrainingHooks&>(*this));
  if (!rank0_) return;
  std::cerr << (o_.replace == "poly" ? "polynomial-replacement search (AutoReP-style) from " : "SNL search from ")
            << net_->desc().spec << " (" << net_->desc().totals().relus << " ReLUs) to budgets";
  for (int64_t b : o_.budgets) std::cerr << " " << b;
  std::cerr << "; KD from " << cfg_.teacher << "; Adam lr " << cfg_.lr << ", lasso " << lasso_ << ", at most "
            << cfg_.epochs << " epochs"
            << (cfg_.precision != "fp32" ? "; the search in fp32 (--precision " + cfg_.precision + " is for the fine-tunes)"
                                         : std::string())
            << (dist_ ? "; data-parallel over " + std::to_string(dist_->world()) + " ranks" : std::string()) << "\n";
}

// The starting network with its weights, a learnable mask on every live
// ReLU site, the teacher, and Adam over weights and masks.
void Search::build_network() {
  torch::manual_seed(cfg_.seed);
  net_ = nn::Net(arch::build_network(cfg_.model, in_));
  if (!o_.start_run.empty()) {
    load_into(net_, load_run_weights(o_.start_run), true, "weights of '" + o_.start_run + "'");
  } else {
    const int n = load_into(net_, load_run_weights(cfg_.teacher), false, "teacher weights");
    if (rank0_) std::cerr << "start: " << n << " tensors copied from teacher " << cfg_.teacher << "\n";
  }
  teacher_ = load_teacher(cfg_.teacher, in_, dev_);
  net_->to(dev_);
  if (dist_) {
    dist_->broadcast_parameters(net_);
    dist_->sync_batch_norm(net_);
  }
  sites_ = make_search_sites(o_.replace, o_.hysteresis, o_.granularity, o_.removed, o_.flip_rate);
  sites_->attach(net_, dev_);  // the same on every rank
  std::vector<torch::Tensor> params = net_->parameters();
  for (const auto& t : sites_->parameters()) params.push_back(t);
  opt_ = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(cfg_.lr));
  lasso_ = o_.lasso;
  best_live_ = start_relus_ = live();
}

// Every rank reads the checkpoint (the search directory is shared, as a
// data-parallel run's); rank 0 alone writes.
void Search::restore() {
  if (rank0_) remove_stale_temporaries(cfg_.out);
  const std::string ckpt = path_join(cfg_.out, "checkpoint.pt");
  if (!util::file_exists(ckpt)) {
    sites_->initialise(net_, split_.train, dev_);  // a new search (the same on every rank)
    if (!rank0_) return;
    nlohmann::json j = o_.to_json();
    j["provenance"] = provenance(cfg_.device, cfg_.threads);
    util::write_file_atomic(path_join(cfg_.out, "config.json"), j.dump(2) + "\n");
    return;
  }
  load_state();
  if (!rank0_) return;
  std::cerr << "resuming the " << (o_.replace == "poly" ? "polynomial-replacement" : "SNL") << " search in " << cfg_.out << " after epoch " << start_ << "\n";
  write_metrics(cfg_.out, history_);  // a kill between the checkpoint and the metrics file lost no line
}

// The search's state from its checkpoint: the network, Adam and the sites'
// tensors in place, then its own.
void Search::load_state() {
  const Checkpoint c = load_checkpoint(path_join(cfg_.out, "checkpoint.pt"), net_, *opt_,
                                       compared_settings(o_).dump(), sites_->checkpoint_tensors());
  start_ = c.epochs_done;
  history_ = nlohmann::json::parse(c.metrics);
  const auto state = nlohmann::json::parse(c.state);
  lasso_ = state.at("lasso");
  best_live_ = state.at("best_live");
  seconds_ = state.at("seconds");
  result_ = SnlResult::from_json(state.at("result"));
  lr_scale_ = state.value("lr_scale", 1.0);  // searches from before the loss-spike rule: none
  rollbacks_ = state.value("rollbacks", 0);
  set_lr();
}

void Search::set_lr() {
  for (auto& g : opt_->param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(cfg_.lr * lr_scale_);
}

// The loss-spike rule: from the 32nd step of an epoch after the first, a
// task loss mean `loss_spike` times the last epoch's stops the epoch. A
// network with many quadratic elements can blow up in a few Adam steps (one
// large activation squared layer after layer: docs/experiments.md); the
// check reads the task loss alone, as the lasso term dominates the total early.
void Search::check_task_loss(double mean, int64_t epoch, int64_t step) {
  if (o_.loss_spike <= 0 || step + 1 < 2 * TrainingEngine::kSyncSteps || history_.empty()) return;
  const double last = history_.back().value("train_task_loss", 0.0);
  if (last > 0 && mean > o_.loss_spike * last) throw LossSpike{mean, epoch, step};
}

// Back to the last epoch's checkpoint (every rank: they decided alike on the
// ranks' mean), Adam's lr halved; returns the epoch to train again. Rank 0
// wrote that checkpoint before the epoch's first step, which every rank waited for.
int64_t Search::roll_back(const LossSpike& spike) {
  engine_->end_progress_line();
  const double last = history_.back().at("train_task_loss").get<double>();
  std::ostringstream m;
  m << std::setprecision(3) << "search epoch " << spike.epoch + 1 << ": the task loss's mean reached " << spike.mean << " by step "
    << spike.step + 1 << ", " << spike.mean / last << "x epoch " << spike.epoch << "'s " << last << " ("
    << o_.expect.prefix << "loss-spike " << o_.loss_spike << ")";
  if (rollbacks_ >= SnlOptions::kMaxRollbacks)
    throw std::runtime_error(m.str() + ", after " + std::to_string(rollbacks_) + " returns with a halved lr; the last finished epoch is kept in " +
                             cfg_.out + ". Try a lower " + o_.expect.prefix + "search-lr.");
  const double lr_was = cfg_.lr * lr_scale_, halved = lr_scale_ * 0.5;
  const int returns = rollbacks_ + 1;  // the checkpoint holds those before it
  load_state();
  rollbacks_ = returns;
  lr_scale_ = halved;
  set_lr();
  if (rank0_)
    std::cerr << m.str() << ": back to epoch " << start_ << "'s checkpoint with Adam lr " << lr_was << " -> "
              << cfg_.lr * lr_scale_ << " (return " << rollbacks_ << " of at most " << SnlOptions::kMaxRollbacks << ")\n";
  return start_;
}

std::vector<int64_t> Search::pending() const {
  std::vector<int64_t> out;
  for (int64_t b : o_.budgets)
    if (std::none_of(result_.snapshots.begin(), result_.snapshots.end(),
                     [&](const SnlSnapshot& s) { return s.budget == b; }))
      out.push_back(b);
  return out;
}

std::string Search::diverged(double loss, int64_t epoch, int64_t step) const {
  return "the SNL search diverged (loss " + std::to_string(loss) + ") at epoch " + std::to_string(epoch + 1) +
         " by step " + std::to_string(step + 1) + "; the last finished epoch is kept in " + cfg_.out +
         ". Try a lower --lr.";
}

std::string Search::progress_line(const StepProgress& p) {
  const int64_t now = live();
  const double at = static_cast<double>(p.epoch) + static_cast<double>(p.step + 1) / static_cast<double>(p.steps);
  // The next budget only: the line must fit a terminal's width to be redrawn.
  const std::string where = forecast_text(look(at, now), 1);
  char buf[512];
  std::snprintf(buf, sizeof buf, "search epoch %lld step %lld/%lld loss %.4f acc %.4f | live ReLUs %lld %s | lasso %.3g   ",
                (long long)p.epoch + 1, (long long)p.step + 1, (long long)p.steps, p.loss, p.acc, (long long)now,
                where.c_str(), lasso_);
  return buf;
}

// A look at the search: the forecast from the looks of the last two epochs.
SearchForecast Search::look(double at, int64_t live_now) {
  looks_.push_back({at, seconds_since(t0_), live_now});
  while (looks_.size() > 2 && looks_.front().epoch < at - 2) looks_.erase(looks_.begin());
  const double steps = static_cast<double>(loader_->batches_per_epoch());
  const SearchForecast f = forecast_search(looks_, pending(), (1 - o_.threshold) / (cfg_.lr * steps));
  warn_if_far(f, at, live_now);
  return f;
}

// Once, early (this process's first three epochs): when the last budget is
// projected far past what was asked, say so and what is faster on small
// data. A rate counts once the count has fallen a tenth (its onset is slow);
// before that, the bound that no mask reaches the threshold sooner.
void Search::warn_if_far(const SearchForecast& f, double at, int64_t live_now) {
  if (warned_ || f.budgets.empty() || at > static_cast<double>(start_) + 3 || at - looks_.front().epoch < 0.25) return;
  const BudgetForecast& last = f.budgets.back();
  if (std::isinf(last.epoch) || (!last.at_least && live_now > start_relus_ * 9 / 10)) return;
  const SnlOptions::Expectation& x = o_.expect;
  const bool far = x.epochs > 0 && last.epoch > 10.0 * static_cast<double>(x.epochs);
  const bool beyond = last.epoch > static_cast<double>(cfg_.epochs);
  if (!far && !beyond) return;
  warned_ = true;
  if (engine_) engine_->end_progress_line();
  std::cerr << "warning: the SNL search is projected to reach budget " << budget_text(last);
  if (far) std::cerr << ", more than 10x the " << x.epochs << " epoch(s) a point is meant to take (" << x.epochs_flag << " "
                     << x.epochs << ")";
  if (beyond) std::cerr << (far ? "; and " : ", ") << "after its last epoch (" << x.prefix << "search-epochs " << cfg_.epochs << ")";
  std::cerr << ". Its settings (" << x.prefix << "search-lr " << cfg_.lr << ", " << x.prefix << "lasso " << o_.lasso
            << ") suit SNL's hundreds of epochs of 391 steps: Adam moves a mask by about the learning rate a step, and "
            << "this data gives " << loader_->batches_per_epoch() << " steps an epoch. On small data docs/experiments.md "
            << "uses " << x.prefix << "search-lr 5e-3 " << x.prefix << "lasso 5e-4 (Fashion-MNIST, 10,000 images, 79 "
            << "steps an epoch: 108K ReLUs to 3.6K in 12 to 16 epochs)\n";
}

void Search::end_epoch(int64_t epoch, const TrainedEpoch& e) {
  const EpochStats te = run_eval(net_, split_.test, dev_, cfg_.workers, cfg_.data_path);
  const int64_t now = live();
  seconds_ += e.seconds;
  history_.push_back({{"epoch", epoch + 1},
                      {"live", now},
                      {"lasso", lasso_},
                      {"train_loss", e.stats.loss / std::max(1.0, e.stats.images)},
                      {"train_task_loss", e.task_loss / std::max(1.0, e.stats.images)},
                      {"search_lr", cfg_.lr * lr_scale_},
                      {"train_acc", e.stats.correct / std::max(1.0, e.stats.images)},
                      {"test_loss", te.loss / std::max(1.0, te.images)},
                      {"test_acc", te.correct / std::max(1.0, te.images)},
                      {"seconds", e.seconds}});
  engine_->end_progress_line();
  if (rank0_) {
    const std::string where = forecast_text(look(static_cast<double>(epoch + 1), now));
    std::fprintf(stderr, "search epoch %lld: live ReLUs %lld, test acc %.4f, lasso %.3g | %s\n", (long long)epoch + 1,
                 (long long)now, history_.back()["test_acc"].get<double>(), lasso_, where.c_str());
  }
  // SNL's schedule: a new low keeps lasso; none (from patience_from on) grows it.
  if (now < best_live_)
    best_live_ = now;
  else if (epoch + 1 >= o_.patience_from)
    lasso_ *= o_.lasso_growth;
  for (int64_t b : pending())
    if (now <= b) take_snapshot(b, epoch + 1, now);
  save_state(epoch + 1);
}

// The budget's largest mask values keep their ReLU; the weights as they are.
// Every rank records it (the same decision everywhere); rank 0 writes it.
void Search::take_snapshot(int64_t budget, int64_t epoch, int64_t live_now) {
  const std::string dir = snapshot_dir(cfg_.out, budget);
  result_.snapshots.push_back({budget, epoch, live_now, dir});
  std::sort(result_.snapshots.begin(), result_.snapshots.end(),
            [](const SnlSnapshot& a, const SnlSnapshot& b) { return a.budget > b.budget; });
  if (!rank0_) return;
  arch::Network desc = net_->desc();
  apply_masks(desc, keep_largest(desc, sites_->scores(), budget, sites_->dropped()));
  save_masks(path_join(dir, "masks.pt"), desc);
  save_weights(net_, path_join(dir, "weights.pt"), sites_->snapshot_parameters());
  std::cerr << "snapshot for budget " << budget << " after epoch " << epoch << ": " << desc.totals().relus
            << " live ReLUs -> " << dir << "\n";
}

// The checkpoint first, then metrics.jsonl from the history it holds (rank 0).
void Search::save_state(int64_t epochs_done) {
  result_.epochs = epochs_done;
  if (!rank0_) return;
  Checkpoint c;
  c.epochs_done = epochs_done;
  c.metrics = history_.dump();
  c.settings = compared_settings(o_).dump();
  c.tensors = sites_->checkpoint_tensors();
  c.state = nlohmann::json{{"lasso", lasso_},       {"best_live", best_live_}, {"seconds", seconds_},
                           {"lr_scale", lr_scale_}, {"rollbacks", rollbacks_},  {"result", result_.to_json()}}
                .dump();
  save_checkpoint(path_join(cfg_.out, "checkpoint.pt"), net_, *opt_, c);
  kill_point_after_checkpoint(epochs_done);
  write_metrics(cfg_.out, history_);
}

SnlResult Search::finish() {
  result_.complete = complete();
  if (!result_.complete) {
    std::string missing;
    for (int64_t b : pending()) missing += (missing.empty() ? "" : ", ") + std::to_string(b);
    throw std::runtime_error("the SNL search in " + cfg_.out + " ran its " + std::to_string(cfg_.epochs) +
                             " epochs and has " + std::to_string(live()) + " live ReLUs, not yet at budget(s) " +
                             missing + ": give more --search-epochs (it continues where it stopped) or a larger --lasso");
  }
  if (rank0_) util::write_file_atomic(path_join(cfg_.out, "result.json"), result_.to_json().dump(2) + "\n");
  if (dist_) dist_->barrier();  // the other ranks go on once the snapshots and result.json are written
  return result_;
}

}  // namespace

namespace {

// The settings a search directory's config.json records, read once; none
// for a new directory (a finished search without one: the read's error).
std::optional<SnlOptions> recorded_search(const std::string& out) {
  const std::string config = path_join(out, "config.json");
  if (!util::file_exists(config) && !util::file_exists(path_join(out, "result.json"))) return std::nullopt;
  return SnlOptions::from_json(nlohmann::json::parse(util::read_file(config)));
}

}  // namespace

SnlResult snl_search(const SnlOptions& o, Distributed* dist) {
  const std::optional<SnlOptions> recorded = recorded_search(o.train.out);
  // A search directory holds one kind of search: an SNL search is not
  // continued as a polynomial replacement, nor the other way round.
  if (recorded && recorded->replace != o.replace)
    throw std::invalid_argument("'" + o.train.out + "' holds a search with --replace " + recorded->replace + ", not " +
                                o.replace + ": remove it, or choose another --out");
  if (auto r = finished_search(o.train.out)) {
    // Reused only when made with these settings (the most epochs aside).
    SnlOptions mine = o;
    mine.train = as_recorded(mine.train);
    const std::string diff = first_difference(compared_settings(*recorded), o.train.out + "/config.json",
                                              compared_settings(mine), "this command");
    if (!diff.empty())
      throw std::invalid_argument("'" + o.train.out + "' holds a finished SNL search made with other settings (" + diff +
                                  "): remove it, or choose another --out");
    return *r;
  }
  // The search directory's one writer (data-parallel: rank 0 holds it for all).
  std::unique_ptr<util::RunLock> lock;
  if (!dist || dist->rank() == 0) lock = std::make_unique<util::RunLock>(o.train.out);
  return Search(o, dist).run();
}

}  // namespace dr::train
