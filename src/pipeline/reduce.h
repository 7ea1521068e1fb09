#pragma once
// The DeepReDuce pipeline (docs/method.md): baseline teacher -> stage
// criticality -> candidates per ReLU budget trained with KD -> Pareto
// frontier, PI cost and a report. Every network is an ordinary run directory
// (train/trainer.h): a finished one is reused, a killed one resumed, so a
// killed pipeline continues where it stopped, and `shard` splits the job list
// between processes or cluster jobs.
//
// Layout of the output directory:
//   teacher/                      the all-ReLU baseline (unless --teacher)
//   criticality/keep-S1.kd/ ...   one run per stage, with and without KD
//   criticality/criticality.json  the criticality table and order
//   candidates/<spec>/            one run per planned network
//   plan.json                     the candidates and the picks per budget
//   report.md, frontier.png       the result, results.json its data
#include <string>
#include <vector>

#include "pi/private_cost.h"
#include "pipeline/jobs.h"
#include "pipeline/linearize.h"
#include "planner/candidates.h"
#include "train/config.h"

namespace dr::pipeline {

// The most images --measure-pi takes: the test split of CIFAR-10/100,
// Fashion-MNIST and TinyImageNet (10,000 each), the largest the registry's
// datasets have. Checked before any work, and against the test images the
// data holds (its --limit) once they are read.
constexpr int64_t kMaxMeasurePi = 10000;

struct ReduceOptions {
  train::TrainConfig train;  // model = the family spec; data; training settings
  std::string out;
  std::string teacher;       // finished baseline run; "" = train it in out/teacher
  std::vector<int64_t> budgets;
  // Budgets in what users pay instead (--budget-ms with --link,
  // --budget-mb or --budget-key-mb; one unit for all): each method plans the networks or ReLU
  // budgets they allow (pi/private_cost.h). Empty: `budgets`, in ReLUs.
  std::vector<pi::CostBudget> cost_budgets;
  int per_budget = 1;
  std::string order;         // "S1,S4,S2,S3": skip criticality, use this order
  bool without_kd = true;    // criticality also without KD
  bool init_from_teacher = false;
  Sweep sweep;               // shard, waiting, trainings at once
  bool dry_run = false;
  std::string protocols = "all";
  std::string plot_ext = "png";
  // Private inference of every frontier row on this many test images
  // (deepreduce pi run; 0 = estimates only). Measured columns in the report
  // and a second plot, accuracy against measured latency.
  int64_t measure_pi = 0;
  // The ReLU gate those runs deal keys for (pi run --relu-gate, with
  // dcf:auto and dpf:auto).
  std::string measure_pi_gate = "dcf";
  // The methods on the frontier (docs/method.md): "deepreduce" (cull, thin,
  // reshape), "snl" (pixel masks learned from the teacher), "combined" (pixel
  // masks learned from DeepReDuce's network that culls the least critical
  // stage and thins the rest). See parse_methods.
  std::vector<std::string> methods = {"deepreduce"};
  // SNL's settings for snl and combined (search and fine-tuning; data,
  // teacher, batch, threads, ... come from `train`).
  LinearizeOptions snl = LinearizeOptions::defaults();
};

// The flag that gives budgets of `b`'s unit: "--budget-ms", "--budget-mb", "--budget-key-mb".
std::string cost_budget_flag(const pi::CostBudget& b);

// "deepreduce", "snl", "combined", a comma list of them, "both" (deepreduce
// and snl) or "all". Throws std::invalid_argument naming what is accepted.
std::vector<std::string> parse_methods(const std::string& text);

// Runs (or continues) the pipeline; returns the path of report.md, or "" when
// this shard stopped before the end (dry run, or waiting disabled). Every
// setting (spec, budgets, order, teacher, protocols, plot format, training
// options) is checked before any data file is read or any run starts; the
// plan is printed before anything trains and needs no data file.
std::string run_reduce(const ReduceOptions& o);

}  // namespace dr::pipeline
