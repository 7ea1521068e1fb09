// The SNL methods of reduce (docs/method.md section 5): pixel-level masks
// learned by `linearize` (pipeline/linearize.h) to every budget below the
// starting network, each snapshot fine-tuned with KD. `snl` starts from the
// teacher; `combined` from DeepReDuce's network that culls the least
// critical stage and thins the rest, trained in reduce's candidates phase.
#include <iostream>

#include "pipeline/methods/methods.h"
#include "pipeline/methods/snl_method.h"
#include "report/format.h"
#include "util/fs.h"

namespace dr::pipeline {

namespace {

using util::path_join;

class Snl final : public SnlMethod {
 public:
  std::string name() const override { return "snl"; }
  std::string title() const override { return "SNL"; }
  std::string starts_from_teacher() const override { return "--method snl starts from its weights"; }

  void plan(const ReduceOptions& o, const ReducePlan& p, bool) override { plan_budgets(o, p, p.base_spec, true); }
  void print_own(const ReduceOptions& o, const ReducePlan&, int& step) const override {
    std::cout << "  " << ++step << ". SNL from the teacher to " << budget_list(budgets_) << " -> "
              << path_join(o.out, "snl") << "\n";
  }
  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    return run_from(o, p, "", points);
  }
  void add_report_notes(const ReduceOptions& o, std::string& notes) const override {
    add_notes(o, notes, " SNL starts from the teacher ([its report](snl/report.md)).");
  }
};

class Combined final : public SnlMethod {
 public:
  std::string name() const override { return "combined"; }
  std::string title() const override { return "DeepReDuce + SNL"; }
  bool uses_criticality() const override { return true; }
  std::string starts_from_teacher() const override {
    return "--method combined starts from the DeepReDuce network it taught";
  }

  // Starts from the least critical stage culled, the others thinned (cull
  // only where the family has no thinning).
  void plan(const ReduceOptions& o, const ReducePlan& p, bool) override {
    const planner::Candidate* best = nullptr;
    for (const auto& c : p.candidates)
      if (c.culled == 1 && (c.step == planner::Step::Cull || c.step == planner::Step::Thin) &&
          (!best || c.step > best->step))
        best = &c;
    if (!best)
      throw std::invalid_argument("no DeepReDuce network culls exactly one stage here: nothing to combine with");
    start_ = *best;
    plan_budgets(o, p, start_.spec, false);
  }
  bool print_candidates(const ReduceOptions& o, const ReducePlan&, int& step, bool listed) const override {
    if (!listed)
      std::cout << "  " << ++step << ". DeepReDuce's " << start_.step_name << " network trained with KD -> "
                << candidate_dir(o.out, start_.spec) << "\n";
    return true;
  }
  void print_own(const ReduceOptions& o, const ReducePlan& p, int& step) const override {
    std::cout << "  " << ++step << ". SNL from DeepReDuce's " << start_.step_name << " network ("
              << report::thousands(start_.relus) << " ReLUs" << (p.order.empty() ? ", under the assumed order" : "")
              << ") to " << budget_list(budgets_) << " -> " << path_join(o.out, "combined") << "\n";
  }
  std::vector<planner::Candidate> candidates() const override { return {start_}; }
  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    return run_from(o, p, candidate_dir(o.out, start_.spec), points);
  }
  void add_report_notes(const ReduceOptions& o, std::string& notes) const override {
    add_notes(o, notes,
              " DeepReDuce + SNL starts from DeepReDuce's `" + start_.spec + "` ([its report](combined/report.md)).");
  }
  void add_results(const ReduceOptions& o, nlohmann::json& results) const override {
    SnlMethod::add_results(o, results);
    results["snl"]["combined_start"] = start_.spec;
  }

 private:
  planner::Candidate start_;  // DeepReDuce's cull-1 + thin network
};

}  // namespace

void check_snl_settings(const ReduceOptions& o) { validate_settings(snl_options(o)); }

std::unique_ptr<Method> make_snl() { return std::make_unique<Snl>(); }
std::unique_ptr<Method> make_combined() { return std::make_unique<Combined>(); }

}  // namespace dr::pipeline
