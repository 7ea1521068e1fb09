// DeepReDuce as a reduce method (docs/method.md): the candidates of the
// criticality order (cull, thin, reshape), the `per_budget` with the most
// ReLUs within each budget, trained with KD in reduce's candidates phase.
#include <iostream>
#include <set>

#include "arch/spec.h"
#include "pi/private_cost.h"
#include "pipeline/methods/methods.h"
#include "pipeline/reduce.h"
#include "report/format.h"
#include "report/table.h"
#include "train/trainer.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

std::string plan_table(const std::vector<planner::BudgetPlan>& plans, bool in_relus) {
  report::Table t({{"budget", "budget", true}, {"step", "step"}, {"spec", "network"}, {"relus", "ReLUs", true}});
  for (const auto& p : plans)
    for (const auto& c : p.picks)
      t.add_row({in_relus ? nlohmann::json(static_cast<int64_t>(p.budget)) : nlohmann::json(p.text), c.step_name,
                 c.spec, c.relus});
  return t.render(report::Format::Table);
}

// Under budgets in what users pay: each candidate's modelled cost in their unit.
std::vector<planner::BudgetPlan> plan_by_cost(const ReduceOptions& o, const ReducePlan& p) {
  const pi::CostBudget& unit = o.cost_budgets.front();
  std::vector<planner::MeasuredBudget> budgets;
  for (const auto& b : o.cost_budgets) budgets.push_back({b.value, b.text()});
  return planner::plan_budgets(
      p.candidates, budgets, o.per_budget,
      [&](const planner::Candidate& c) {
        return unit.of(pi::private_cost(arch::build_network(c.spec, p.input), p.time_model, p.relu_gate));
      },
      [&](double v) { return report::fixed(v, 2) + " " + unit.unit_text() + " (" + unit.basis(p.time_model) + ")"; });
}

class DeepReduce final : public Method {
 public:
  std::string name() const override { return "deepreduce"; }
  std::string title() const override { return "DeepReDuce"; }
  bool labelled_points() const override { return true; }
  bool uses_criticality() const override { return true; }

  void plan(const ReduceOptions& o, const ReducePlan& p, bool replanned) override {
    in_relus_ = o.cost_budgets.empty();
    unit_ = in_relus_ ? "ReLUs" : o.cost_budgets.front().unit_text();
    budgets_ = in_relus_ ? planner::plan_budgets(p.candidates, o.budgets, o.per_budget) : plan_by_cost(o, p);
    if (replanned)
      std::cout << "\nCandidates under the measured order " << util::join(p.order, " < ") << ":\n"
                << plan_table(budgets_, in_relus_);
  }

  bool print_candidates(const ReduceOptions& o, const ReducePlan& p, int& step, bool) const override {
    std::cout << "  " << ++step << ". DeepReDuce candidates per budget"
              << (in_relus_ ? ""
                            : " (the costliest within each, in " + o.cost_budgets.front().unit_text() + ": " +
                                  o.cost_budgets.front().basis(p.time_model) + ")")
              << ", trained with KD:\n"
              << plan_table(budgets_, in_relus_);
    return true;
  }

  // The distinct picks over all budgets, in budget order.
  std::vector<planner::Candidate> candidates() const override {
    std::vector<planner::Candidate> picked;
    std::set<std::string> seen;
    for (const auto& b : budgets_)
      for (const auto& c : b.picks)
        if (seen.insert(c.spec).second) picked.push_back(c);
    return picked;
  }

  void add_plan_json(nlohmann::json& j) const override {
    for (const auto& b : budgets_) {
      nlohmann::json picks = nlohmann::json::array();
      for (const auto& c : b.picks) picks.push_back(c.spec);
      j["budgets"].push_back({{"budget", in_relus_ ? nlohmann::json(static_cast<int64_t>(b.budget)) : nlohmann::json(b.budget)},
                              {"unit", unit_},
                              {"picks", picks}});
    }
  }

  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    for (const auto& c : candidates()) {  // trained in the candidates phase
      const std::string dir = candidate_dir(o.out, c.spec);
      points.push_back({name(), c.step_name, c.spec, dir, c.relus, p.runs.at(dir).test_acc});
    }
    return true;
  }

  bool trained_deepreduce_networks() const override { return !budgets_.empty(); }

 private:
  std::vector<planner::BudgetPlan> budgets_;  // the picks per budget
  bool in_relus_ = true;                      // --budget's ReLUs, else budgets in what users pay
  std::string unit_;                          // "ReLUs", "MB online", "ms on WAN"
};

}  // namespace

std::unique_ptr<Method> make_deepreduce() { return std::make_unique<DeepReduce>(); }

}  // namespace dr::pipeline
