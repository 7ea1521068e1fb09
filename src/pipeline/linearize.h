#pragma once
// `deepreduce linearize`: SNL's pixel-level linearisation (docs/method.md
// section 5) to a list of ReLU budgets, from the teacher or (--from) from a
// DeepReDuce network: one mask search (train/snl.h) whose snapshots, one per
// budget, are fine-tuned with KD as ordinary masked runs. Output directory:
//   search/                 the mask search (resumable)
//   budget-<B>/             one fine-tuned masked run per budget (masks.pt beside weights.pt)
//   results.json, report.md, frontier.png, stage_share.png
#include <string>
#include <vector>

#include "pipeline/jobs.h"
#include "train/config.h"
#include "train/snl.h"

namespace dr::pipeline {

struct LinearizeOptions {
  // The fine-tuning of each snapshot (SNL: SGD lr 1e-3, momentum 0.9, wd 5e-4,
  // cosine over 100 epochs, KD from the teacher), and the settings the search
  // shares with it: data, limit, teacher, batch, seed, threads, device,
  // workers, kd_T, augmentation.
  train::TrainConfig finetune;
  // The search's own settings: train.lr (Adam), train.epochs (the most search
  // epochs), train.kd_lambda, lasso, threshold, ... (SNL's defaults); its
  // model, start run, budgets and directory (OUT/search) are set by validate.
  train::SnlOptions search = train::SnlOptions::defaults();
  std::string out;
  std::string from;  // a model spec or a finished run to start from ("" = the teacher)
  std::vector<int64_t> budgets;
  Sweep sweep;       // the fine-tunes are the sweep's jobs
  // > 0: the training epochs each point gets in all: its snapshot's search
  // epochs plus max(1, T - those) fine-tuning epochs (instead of
  // finetune.epochs), to compare methods at equal training per point.
  int64_t epochs_per_point = 0;
  std::string plot_ext = "png";
  bool dry_run = false;
  // The flags the user typed for these settings, for error messages
  // (reduce: --snl-search-lr, --snl-finetune-epochs, ...).
  struct Flags {
    std::string search_prefix = "--";  // + "search-lr", "lasso", ... (train::SnlOptions::validate_settings)
    std::string finetune_epochs = "--epochs";
    std::string epochs_per_point = "--epochs-per-point";
  } flags;

  static LinearizeOptions defaults();
};

// One point of the linearised frontier.
struct LinearizedPoint {
  int64_t budget = 0, relus = 0;
  std::string run;             // the fine-tuned run
  double acc = 0;              // its test accuracy
  int64_t search_epochs = 0;   // search epochs before its snapshot
  int64_t finetune_epochs = 0;
  std::vector<std::pair<std::string, int64_t>> stage_relus;  // live ReLUs per stage
  int64_t polys = 0;           // polynomial elements (--replace poly)
};

// Copies what a search and its fine-tunes share with another training (the
// settings table's `shared` rows: data, limit, teacher, batch, seed, threads,
// device, workers, data path, kd_T, augmentation).
void share_settings(const train::TrainConfig& from, train::TrainConfig& to);

// The settings that need no file (the search's, the fine-tunes' epochs,
// --epochs-per-point, plot format, sweep), naming the flags of o.flags;
// reduce checks its SNL options with this before any work (its budgets are
// each method's to plan).
void validate_settings(const LinearizeOptions& o);

// Checks every setting before reading data: a budget listed,
// validate_settings, --out (new,
// empty, or an earlier linearize output), budgets below the starting
// network's count, the teacher (finished, all-ReLU, of --data's input and
// classes), --from (a spec, or a finished unmasked run); throws
// std::invalid_argument or arch::SpecError.
void validate(LinearizeOptions& o);

// Runs (or continues) the search and the fine-tunes; writes the report.
// Returns the points, or none when this shard stopped early or dry_run.
// Data-parallel (dist, under WORLD_SIZE > 1): the search and each fine-tune
// train over every rank (one shard, --jobs 1); rank 0 prints the plan and
// writes the report, and every rank returns the points.
std::vector<LinearizedPoint> run_linearize(LinearizeOptions o, train::Distributed* dist = nullptr);

// The report's files for a finished linearize directory (also used by reduce).
std::string linearize_report(const LinearizeOptions& o, const std::vector<LinearizedPoint>& points);

}  // namespace dr::pipeline
