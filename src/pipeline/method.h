#pragma once
// A ReLU-reduction method of `reduce` as one unit: what it checks and plans
// for the budget list, what it trains, and the frontier points it returns.
// `reduce` plans every method, runs the shared phases (teacher, criticality,
// the DeepReDuce networks the methods ask for), then each method's own, and
// reports over the points; it never asks which method it holds.
//
// Adding a method: a file under pipeline/methods/ that defines a Method and
// its factory, and one line in the registry (methods.cpp). docs/architecture.md
// ("A ReLU-reduction method") walks through it.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "pi/private_cost.h"
#include "pipeline/jobs.h"
#include "planner/candidates.h"

namespace dr::pipeline {

struct ReduceOptions;

// One trained network on the frontier.
struct FrontierPoint {
  std::string method;   // Method::name(); "" for the baseline
  std::string label;    // the steps table's "optimisation step" (DeepReDuce's step, "SNL to 1,200")
  std::string network;  // its spec, or a masked run's label
  std::string run;      // its run directory
  int64_t relus = 0;
  double acc = 0;       // test accuracy in [0, 1]
  int64_t polys = 0;    // polynomial elements (not ReLUs)
};

// What every method shares, decided before training: the checked settings
// and DeepReDuce's candidates under the order known so far.
struct ReducePlan {
  std::string base_spec;
  arch::InputSpec input;
  int64_t base_relus = 0;
  std::vector<std::string> stages;  // the family's stages
  std::string teacher_dir;
  std::vector<std::string> order;   // least to most critical; empty until measured
  std::string order_from;           // "given", "measured" (an earlier run's criticality.json) or ""
  std::vector<planner::Candidate> candidates;
  // The finished runs so far, each read and checked once: the teacher (given
  // or trained), then the DeepReDuce networks of the candidates phase.
  Runs runs;
  // What a private inference costs (budgets in what users pay, the report's
  // ranking), with the ReLU gate --measure-pi-gate names (the default
  // one-round gate for dcf:auto and dpf:auto, whose width the data chooses
  // only when a network is measured).
  pi::TimeModel time_model;
  mpc::ReluGateChoice relu_gate;
};

// One method of one reduce (an instance holds what it planned).
class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;   // --method, the steps table's method column
  virtual std::string title() const = 0;  // the plot's legend
  // The plot draws its networks as points labelled with their specs (true)
  // or as a line over the budgets (false).
  virtual bool labelled_points() const { return false; }
  // It culls by the criticality order: reduce measures criticality (unless
  // --order) and trains the DeepReDuce networks of candidates().
  virtual bool uses_criticality() const { return false; }
  // Why a given teacher must be the --model network itself ("" when the
  // teacher only teaches).
  virtual std::string starts_from_teacher() const { return ""; }

  // Checks the budgets and plans with p's candidates; called before any
  // work, and again with `replanned` once criticality fixed the order.
  // Throws std::invalid_argument.
  virtual void plan(const ReduceOptions& o, const ReducePlan& p, bool replanned) = 0;
  // The dry-run plan's lines: first the DeepReDuce networks trained in the
  // candidates phase (`listed`: an earlier method already listed them; returns
  // whether they are listed now), then the method's own training.
  virtual bool print_candidates(const ReduceOptions&, const ReducePlan&, int& /*step*/, bool listed) const {
    return listed;
  }
  virtual void print_own(const ReduceOptions&, const ReducePlan&, int& /*step*/) const {}
  // The DeepReDuce networks it needs trained with KD (candidates phase).
  virtual std::vector<planner::Candidate> candidates() const { return {}; }
  // What it adds to plan.json.
  virtual void add_plan_json(nlohmann::json&) const {}

  // Its own training after the candidates phase; appends its frontier
  // points. False when this shard stopped before the end.
  virtual bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) = 0;

  // The report: whether it trained DeepReDuce networks with --epochs, its
  // sentences about how its points were made (appended to `notes`), and its
  // part of results.json.
  virtual bool trained_deepreduce_networks() const { return !candidates().empty(); }
  virtual void add_report_notes(const ReduceOptions&, std::string& /*notes*/) const {}
  virtual void add_results(const ReduceOptions&, nlohmann::json& /*results*/) const {}
};

// The registry (methods.cpp), in the order reduce runs and reports them.
struct MethodEntry {
  const char* name;
  std::function<std::unique_ptr<Method>()> make;
  std::vector<std::string> outputs;  // its folders' markers under --out (check_output_dir)
  // Checks its settings whatever the methods (an option given is checked
  // even where unused); null when it has none of its own.
  std::function<void(const ReduceOptions&)> check_settings;
};
const std::vector<MethodEntry>& method_registry();

// The methods of `names` (checked by parse_methods), in registry order.
std::vector<std::unique_ptr<Method>> make_methods(const std::vector<std::string>& names);

// The run directory of a DeepReDuce network: OUT/candidates/<run_name(spec)>.
std::string candidate_dir(const std::string& out, const std::string& spec);

}  // namespace dr::pipeline
