#pragma once
// The DeepReDuce plan: from a family spec and the stages' criticality order,
// the candidate networks of each step (cull, thin, reshape), which of them
// fit each ReLU budget, and how a sweep's jobs split into shards.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/spec.h"

namespace dr::planner {

// The DeepReDuce steps in the paper's order (plan.json records the number).
enum class Step { Cull = 1, Thin = 2, HalfAlpha = 3, HalfRho = 4, HalfAlphaAndRho = 5, OneBlockPerStage = 6 };

struct Candidate {
  Step step = Step::Cull;
  std::string step_name;  // e.g. "cull S1,S4 + thin + alpha 0.5"
  std::string spec;       // canonical model spec
  int64_t relus = 0;
  int culled = 0;         // how many of the least critical stages are culled
};

// Every candidate of the DeepReDuce steps, for m = 1..k-1 culled stages (the
// m least critical), each then thinned and reshaped: alpha x0.5 (2x fewer
// ReLUs), rho x0.5 (4x), both (8x), and beyond that one block per stage
// (ResNets). `base` is a family spec without cull/keep/thin (it may carry
// alpha, rho or blocks, which the reshaping steps scale). Networks the input
// cannot carry (a spatial size below 1) are left out. Sorted by ReLUs, most first.
std::vector<Candidate> deepreduce_candidates(const std::string& base,
                                             const std::vector<std::string>& least_to_most,
                                             const arch::InputSpec& input);

struct BudgetPlan {
  double budget = 0;  // ReLUs, or a cost (the measure's unit)
  std::string text;   // as tables show it: "12,000", "1.5 MB"
  std::vector<Candidate> picks;
};
// For each budget, the `per_budget` candidates with the most ReLUs within it
// (on equal counts the earlier DeepReDuce step). Throws std::invalid_argument
// for a budget below every candidate, naming the smallest one.
std::vector<BudgetPlan> plan_budgets(const std::vector<Candidate>& candidates,
                                     const std::vector<int64_t>& budgets, int per_budget = 1);

// A budget in another measure of a candidate (what its private inference
// costs): its value, how tables and errors show it, and the measure.
struct MeasuredBudget {
  double value = 0;
  std::string text;
};
// For each budget, the `per_budget` candidates of the highest measure within
// it (on equal measures the one with more ReLUs, then the earlier step).
// Throws std::invalid_argument for a budget below every candidate, naming the
// cheapest one and its measure (shown by `show`).
std::vector<BudgetPlan> plan_budgets(const std::vector<Candidate>& candidates,
                                     const std::vector<MeasuredBudget>& budgets, int per_budget,
                                     const std::function<double(const Candidate&)>& measure,
                                     const std::function<std::string(double)>& show);

// "50K,20K,1.5M,12000" (K = 1,000, M = 1,000,000). Throws std::invalid_argument
// for an empty, malformed, non-finite, zero or negative budget, and for one
// above arch::limits::kMaxCount ("budget '...' is too large (at most ...)").
std::vector<int64_t> parse_budgets(const std::string& text);

// A part of a sweep: job j belongs to shard (j mod count).
struct Shard {
  int index = 0, count = 1;
  bool owns(size_t job) const { return static_cast<int>(job % count) == index; }
  std::string str() const { return std::to_string(index) + "/" + std::to_string(count); }
};
// "i/N" with 0 <= i < N. Throws std::invalid_argument.
Shard parse_shard(const std::string& text);

}  // namespace dr::planner
