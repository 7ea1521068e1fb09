#include "pipeline/methods/snl_method.h"

#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "arch/spec.h"
#include "pi/private_cost.h"
#include "report/format.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace dr::pipeline {

namespace {

std::string lasso_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

std::string budget_list(const std::vector<int64_t>& budgets) {
  std::string out;
  for (size_t i = 0; i < budgets.size(); ++i)
    out += (i == 0 ? "" : i + 1 == budgets.size() ? " and " : ", ") + report::thousands(budgets[i]);
  return out + " live ReLUs";
}

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

bool SnlMethod::run_from(const ReduceOptions& o, const ReducePlan& p, const std::string& from,
                         std::vector<FrontierPoint>& points) const {
  LinearizeOptions l = snl_options(o);
  l.search.replace = replace();
  l.finetune.teacher = p.teacher_dir;
  l.out = util::path_join(o.out, name());
  l.from = from;
  l.budgets = budgets_;
  std::cerr << "[" << name() << "] " << title() << " from " << (from.empty() ? p.teacher_dir : from) << " -> " << l.out
            << "\n";
  const std::vector<LinearizedPoint> done = run_linearize(l);
  const std::string label = replace() == "poly" ? "poly to " : "SNL to ";
  for (const auto& d : done) {
    FrontierPoint f{name(), label + report::thousands(d.relus), train::run_network(d.run).label(), d.run, d.relus,
                    d.acc};
    f.polys = d.polys;
    points.push_back(f);
  }
  return !done.empty();
}

void SnlMethod::plan_budgets(const ReduceOptions& o, const ReducePlan& p, const std::string& start_spec,
                             bool teacher_start) {
  const arch::Network start = arch::build_network(start_spec, p.input);
  const int64_t relus = start.totals().relus;
  budgets_.clear();
  if (o.cost_budgets.empty()) {
    for (int64_t b : o.budgets) {
      if (b < relus)
        budgets_.push_back(b);
      else if (teacher_start)
        throw std::invalid_argument("budget " + std::to_string(b) + " is not below the teacher's " +
                                    std::to_string(relus) + " ReLUs (method " + name() + ")");
    }
  } else {
    const pi::SearchCost cost =
        pi::search_cost(start, replace() == "poly" ? arch::SiteOp::Poly : arch::SiteOp::Identity, p.time_model,
                        p.relu_gate);
    for (const pi::CostBudget& b : o.cost_budgets) {
      const int64_t r = pi::relus_within(cost, b);
      const auto cost_text = [&](int64_t at) { return report::fixed(b.of(pi::cost_at(cost, at)), 2) + " " + b.unit_text(); };
      if (r < 0)
        throw std::invalid_argument(
            cost_budget_flag(b) + " " + b.text() + " is below what method " + name() + " can reach: from " + start_spec +
            " with no ReLU left its network costs " + cost_text(0) +
            " (" + b.basis(p.time_model) +
            (replace() == "poly" ? "; each polynomial element moves as many online bytes as a ReLU" : "") + ")");
      if (r < relus)
        budgets_.push_back(r);
      else if (teacher_start)
        throw std::invalid_argument(cost_budget_flag(b) + " " + b.text() + " is not below the teacher's cost, " +
                                    cost_text(relus) + " with all " + std::to_string(relus) + " ReLUs (method " +
                                    name() + ")");
    }
  }
  if (!budgets_.empty()) return;
  std::string start_cost = std::to_string(relus) + " ReLUs";
  if (!o.cost_budgets.empty()) {
    const pi::CostBudget& b = o.cost_budgets.front();
    start_cost = report::fixed(b.of(pi::private_cost(start, p.time_model, p.relu_gate)), 2) + " " + b.unit_text() + " (" +
                 start_cost + ")";
  }
  throw std::invalid_argument("no budget is below the " + start_cost + " of " + start_spec + ", where the " + name() +
                              " method starts");
}

void SnlMethod::add_notes(const ReduceOptions& o, std::string& notes, const std::string& own) {
  const std::string head = "Mask-search points: ";
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

void SnlMethod::add_results(const ReduceOptions& o, nlohmann::json& results) const {
  if (!results.contains("snl")) {
    const LinearizeOptions& l = o.snl;
    // The search's own settings (its table); data, batch, seed, augmentation, KD T and lambda are `settings`'.
    nlohmann::json search = train::search_settings_json(l.search);
    search.erase("replace");  // per method: each results.json below says
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

}  // namespace dr::pipeline
