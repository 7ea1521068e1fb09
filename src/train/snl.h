#pragma once
// SNL's mask search (Selective Network Linearization, Cho et al., ICML 2022;
// docs/method.md section 5): starting from a trained network, learn a mask m
// per ReLU element together with the weights,
//     y = m * relu(x) + (1 - m) * x,   loss = CE + KD + lasso * sum |m|   (Adam),
// with lasso grown x1.1 after every epoch (from the 5th on) in which the live
// count (elements with m > threshold) reached no new low. Whenever the live
// count falls to one of the budgets, that budget's snapshot keeps the
// budget's largest mask values (so it has exactly `budget` live ReLUs) with
// the weights of the moment; the snapshots are then fine-tuned as ordinary
// masked runs (pipeline/linearize).
//
// The search directory is resumable like a run:
//   config.json     the settings          metrics.jsonl  per epoch: live, lasso, losses, accuracies
//   checkpoint.pt   weights, masks, Adam, lasso, snapshots taken
//   snapshots/<budget>/masks.pt, weights.pt               result.json   written last
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "arch/datasets.h"
#include "train/config.h"

namespace dr::train {

struct SnlOptions {
  // data, limit, batch, seed, threads, device, workers, teacher, kd_T,
  // kd_lambda as for training; model = the network to start from; lr =
  // Adam's learning rate; epochs = the most search epochs; out = the search
  // directory. SNL's defaults: lr 1e-3, batch 128, 2000 epochs, KD with T = 4.
  TrainConfig train;
  // The starting network's weights: a finished run whose network is `model`
  // ("" = the teacher's weights, copied where names and shapes match).
  std::string start_run;
  std::vector<int64_t> budgets;  // live ReLUs; each below the starting network's
  double lasso = 1e-5;           // L1 weight at the start
  double lasso_growth = 1.1;     // its factor after an epoch without a new low
  int64_t patience_from = 5;     // first epoch (1-based) after which lasso may grow
  double threshold = 0.01;       // m > threshold counts as a live ReLU
  // What a removed ReLU becomes (search_sites.h): "identity" (SNL) or "poly"
  // (AutoReP-style: a per-channel quadratic, an indicator with hysteresis).
  std::string replace = "identity";
  double hysteresis = 0.002;     // poly: the indicator's band around the threshold
  // poly: "may-return" (AutoReP's loop: a replaced element becomes a ReLU
  // again when its score passes the band's top) or "stay" (once replaced,
  // replaced: no flip-back, but the search stalls; docs/experiments.md).
  std::string removed = "may-return";
  // poly: the most indicators one step flips each way, as a fraction of the
  // live ReLUs, lowest scores falling first (search_sites.h); 0: no limit
  // (AutoReP's loop as published, what searches recorded before it read as).
  double flip_rate = 0.01;
  // "element" (a mask or score per element) or "channel" (per channel: the
  // snapshots keep whole channels, at most the budget's ReLUs).
  std::string granularity = "element";
  // The loss-spike rule: an epoch whose task loss (KD) mean, read every 16
  // steps from its 32nd, reaches this many times the last epoch's goes back
  // to the last epoch's checkpoint with Adam's learning rate halved, at most
  // kMaxRollbacks times in a search (0: off; otherwise above 1).
  double loss_spike = 4;
  static constexpr int kMaxRollbacks = 3;
  // Not a setting (not recorded): what the search's early warning compares
  // with, the training epochs a point is meant to take (0: none) and the
  // flag that set them, and the prefix of the search's flags as typed
  // ("--" for linearize, "--snl-" for reduce).
  struct Expectation {
    int64_t epochs = 0;
    std::string epochs_flag;
    std::string prefix = "--";
  } expect;

  static SnlOptions defaults();  // SNL's settings
  // The settings as config.json records them: the search's optimizer is Adam
  // ("optimizer": "adam"), so the SGD-only fields of `train` (schedule,
  // momentum, nesterov, wd, warmup) are left out.
  nlohmann::json to_json() const;
  static SnlOptions from_json(const nlohmann::json& j);
  // The search's own settings (search_settings()), with no file read:
  // std::invalid_argument naming the flag as the user typed it, `prefix` +
  // the row's flag ("--" for linearize, "--snl-" for reduce).
  void validate_settings(const std::string& prefix = "--") const;
  // Everything that can be checked before reading data: validate_settings,
  // the shared training settings, budgets below the starting network's count,
  // the teacher (finished, all-ReLU, for --data's input and classes) and the
  // start run (finished, unmasked, of `model`). std::invalid_argument naming
  // the setting.
  void validate(const std::string& prefix = "--") const;
};

// The search's own settings, one row each: the one table that makes their
// command-line options (linearize: --lasso, ...; reduce: --snl-lasso, ...),
// their checks (validate_settings), their config.json entries and the
// "search" section of reduce's results.json. The search's lr, most epochs and
// KD weight are fields of its TrainConfig (recorded under "train" in
// config.json); the others are SnlOptions' own. Adding a search setting: a
// field and its row.
struct SearchSetting {
  using Member = std::variant<double SnlOptions::*, int64_t SnlOptions::*, std::string SnlOptions::*,
                              double TrainConfig::*, int64_t TrainConfig::*>;
  const char* key;   // results.json's "search" section (and config.json for SnlOptions' own fields)
  const char* flag;  // after the command's prefix: "search-lr", "lasso", ...
  const char* help;
  Member member;
  // The accepted range: a number in lo..hi (each end open or closed), or
  // for an integer lo..hi, checked on the command line's text as well.
  double lo = 0, hi = 0;
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices = {};  // a string: the values accepted
  // config.json must record it (false: a setting newer than some searches,
  // which read as `before` where given, else as its default).
  bool recorded_always = true;
  std::optional<double> before = {};  // a number's value in searches recorded before the row existed
  // reduce sets it per method (--method poly) instead of offering --snl-FLAG.
  bool per_method = false;
};
const std::vector<SearchSetting>& search_settings();
// The value a row's member names in `o` (std::visit over SearchSetting::member).
template <class T> T& setting_value(SnlOptions& o, T SnlOptions::*m) { return o.*m; }
template <class T> T& setting_value(SnlOptions& o, T TrainConfig::*m) { return o.train.*m; }
template <class T> const T& setting_value(const SnlOptions& o, T SnlOptions::*m) { return o.*m; }
template <class T> const T& setting_value(const SnlOptions& o, T TrainConfig::*m) { return o.train.*m; }

// The search's own settings as reduce's results.json records them (a row's
// key -> its value), with "optimizer": "adam".
nlohmann::json search_settings_json(const SnlOptions& o);

// The one check of a --budget list every command shares: at least one budget.
void check_budget_list(const std::vector<int64_t>& budgets);

// The input a --data source gives before any file is read: the registry's
// shape and classes, classes 0 where the files decide them (a TinyImageNet
// folder may hold fewer than its 200; checked once the data is read).
arch::InputSpec input_before_data(const std::string& data);

// Refuses (std::invalid_argument) a `role` run ("teacher", "--from run") that
// is not finished or was trained for another input or class count than
// --data gives, naming the run, its input and classes, and the data.
void check_run_for_data(const std::string& dir, const std::string& role, const std::string& data);

// Whether a finished run holds pixel masks (an SNL network: config.json says masked).
bool is_masked_run(const std::string& dir);

struct SnlSnapshot {
  int64_t budget = 0, epoch = 0;  // taken after this search epoch
  int64_t live_at = 0;            // the live count (m > threshold) then
  std::string dir;                // its masks.pt and weights.pt
};

struct SnlResult {
  std::vector<SnlSnapshot> snapshots;  // by budget, largest first
  int64_t epochs = 0;                  // search epochs run
  bool complete = false;               // every budget has its snapshot
  nlohmann::json to_json() const;
  static SnlResult from_json(const nlohmann::json& j);
};

// Where a search is going, for its progress lines and early warning. A look
// at the search: search epochs done (fractional: 2.5 = half-way through the
// third), this process's search time then, and the live count.
struct SearchSample {
  double epoch = 0, seconds = 0;
  int64_t live = 0;
};
struct BudgetForecast {
  int64_t budget = 0;
  double epoch = 0;       // projected search epoch; infinity: the count is not falling
  double seconds = 0;     // time from the last look until then; NaN: unknown yet
  bool at_least = false;  // a lower bound: no mask can reach the threshold sooner
};
struct SearchForecast {
  double rate = 0;  // live ReLUs lost per epoch between the first and last look
  std::vector<BudgetForecast> budgets;
};
// From `samples` (oldest first, at least one): each pending budget, largest
// (reached first) first, at the recent rate. Before the count falls, no
// sooner than `first_fall`, the epoch before which no mask can reach the
// threshold (Adam moves a mask by about lr a step: (1 - threshold) / (lr x
// steps per epoch)).
SearchForecast forecast_search(const std::vector<SearchSample>& samples, const std::vector<int64_t>& pending,
                               double first_fall);
// "-1200/epoch; 54000 at epoch 26 (in 0:09:00), 5000 at epoch >= 41 (in >=
// 0:15:00)" ("not falling yet; ..." before the count falls): the rate and
// the first `most` budgets of `f` (0: all).
std::string forecast_text(const SearchForecast& f, size_t most = 0);

class Distributed;

// Runs (or resumes, or returns the result of) the search in o.train.out,
// data-parallel over `dist`'s ranks when given (the same global batch: the
// same search as one process, to float noise; rank 0 writes the directory).
// Throws std::runtime_error when the search ends (max epochs) before a budget is reached.
SnlResult snl_search(const SnlOptions& o, Distributed* dist = nullptr);

// The result of a finished search in `dir`, if any.
std::optional<SnlResult> finished_search(const std::string& dir);

}  // namespace dr::train
