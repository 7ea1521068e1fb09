// The SNL methods of reduce (docs/method.md section 5): pixel-level masks
// learned by `linearize` (pipeline/linearize.h) to every budget below the
// starting network, each snapshot fine-tuned with KD. `snl` starts from the
// teacher; `combined` from DeepReDuce's network that culls the least
// critical stage and thins the rest, trained in reduce's candidates phase.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "pipeline/linearize.h"
#include "pipeline/methods/methods.h"
#include "pipeline/reduce.h"
#include "report/format.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace dr::pipeline {

namespace {

using util::path_join;

std::vector<int64_t> budgets_below(const std::vector<int64_t>& budgets, int64_t relus) {
  std::vector<int64_t> out;
  for (int64_t b : budgets)
    if (b < relus) out.push_back(b);
  return out;
}

// The SNL methods' LinearizeOptions as far as they are known before the
// teacher exists (reduce's --snl-* options, its training settings).
LinearizeOptions snl_options(const ReduceOptions& o) {
  LinearizeOptions l = o.snl;
  share_settings(o.train, l.finetune);
  l.finetune.kd_lambda = o.train.kd_lambda;  // as DeepReDuce's candidates
  l.finetune.precision = o.train.precision;  // the fine-tunes as DeepReDuce's candidates; the search stays fp32
  l.sweep = o.sweep;
  l.plot_ext = o.plot_ext;
  l.flags = {"--snl-", "--snl-finetune-epochs", "--snl-epochs-per-point"};
  return l;
}

std::string lasso_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// What both SNL methods do: a linearize run under OUT/<name>, its points,
// and one paragraph and one results.json section for both.
class SnlMethod : public Method {
 protected:
  // SNL from `from` ("" = the teacher) to the budgets below `start_relus`.
  bool run_from(const ReduceOptions& o, const ReducePlan& p, const std::string& from, int64_t start_relus,
                std::vector<FrontierPoint>& points) const {
    LinearizeOptions l = snl_options(o);
    l.finetune.teacher = p.teacher_dir;
    l.out = path_join(o.out, name());
    l.from = from;
    l.budgets = budgets_below(o.budgets, start_relus);
    std::cerr << "[" << name() << "] SNL from " << (from.empty() ? p.teacher_dir : from) << " -> " << l.out << "\n";
    const std::vector<LinearizedPoint> done = run_linearize(l);
    for (const auto& d : done)
      points.push_back({name(), "SNL to " + report::thousands(d.relus), train::run_network(d.run).label(), d.run,
                        d.relus, d.acc});
    return !done.empty();
  }

  // The search and fine-tuning settings, once for both methods, then `own`.
  static void add_notes(const ReduceOptions& o, std::string& notes, const std::string& own) {
    const std::string head = "SNL points: ";
    if (notes.find(head) == std::string::npos) {
      const LinearizeOptions& l = o.snl;
      notes += head + "a mask search (Adam lr " + report::fixed(l.search.train.lr, 4) + ", lasso " +
               lasso_text(l.search.lasso) + " x" + report::fixed(l.search.lasso_growth, 2) + ", at most " +
               std::to_string(l.search.train.epochs) + " epochs, stopping at the last budget; " +
               "each point's search epochs are in its report), each budget's snapshot then fine-tuned with KD (" +
               (l.epochs_per_point > 0 ? std::to_string(l.epochs_per_point) + " epochs per point in all, search included"
                                       : std::to_string(l.finetune.epochs) + " epochs") +
               ", " + l.finetune.schedule + ", lr " + report::fixed(l.finetune.lr, 4) + ").";
    }
    notes += own;
  }

  void add_results(const ReduceOptions& o, nlohmann::json& results) const override {
    if (!results.contains("snl")) {
      const LinearizeOptions& l = o.snl;
      // SNL's own settings (the search's table); data, batch, seed, augmentation, KD T and lambda are `settings`'.
      const nlohmann::json search = train::search_settings_json(l.search);
      // The fine-tunes' own: their optimisation and precision (the settings table's rows that decide the
      // result and are not shared with the search).
      nlohmann::json finetune = {{"optimizer", "sgd"}};
      for (const train::Setting& f : train::train_settings())
        if (f.result && !f.shared &&
            (f.group == train::Setting::Training || f.group == train::Setting::Sgd || f.group == train::Setting::Execution))
          std::visit([&](auto m) { finetune[f.key] = l.finetune.*m; }, f.member);
      results["snl"] = {{"search", search},
                        {"finetune", finetune},
                        {"epochs_per_point", l.epochs_per_point},
                        {"combined_start", ""},
                        {"results", nlohmann::json::array()}};
    }
    results["snl"]["results"].push_back(name() + "/results.json");
  }
};

class Snl final : public SnlMethod {
 public:
  std::string name() const override { return "snl"; }
  std::string title() const override { return "SNL"; }
  std::string starts_from_teacher() const override { return "--method snl starts from its weights"; }

  void plan(const ReduceOptions& o, const ReducePlan& p, bool) override {
    for (int64_t b : o.budgets)
      if (b >= p.base_relus)
        throw std::invalid_argument("budget " + std::to_string(b) + " is not below the teacher's " +
                                    std::to_string(p.base_relus) + " ReLUs (method snl)");
  }
  void print_own(const ReduceOptions& o, const ReducePlan&, int& step) const override {
    std::cout << "  " << ++step << ". SNL from the teacher to every budget -> " << path_join(o.out, "snl") << "\n";
  }
  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    return run_from(o, p, "", p.base_relus, points);
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
    if (budgets_below(o.budgets, start_.relus).empty())
      throw std::invalid_argument("no budget is below the " + std::to_string(start_.relus) + " ReLUs of " +
                                  start_.spec + ", where the combined method starts");
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
              << ") to the budgets below it -> " << path_join(o.out, "combined") << "\n";
  }
  std::vector<planner::Candidate> candidates() const override { return {start_}; }
  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    return run_from(o, p, candidate_dir(o.out, start_.spec), start_.relus, points);
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

void check_snl_settings(const ReduceOptions& o) {
  LinearizeOptions l = snl_options(o);
  l.budgets = o.budgets;
  validate_settings(l);
}

std::unique_ptr<Method> make_snl() { return std::make_unique<Snl>(); }
std::unique_ptr<Method> make_combined() { return std::make_unique<Combined>(); }

}  // namespace dr::pipeline
