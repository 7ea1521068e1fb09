#include "pipeline/methods/snl_method.h"

#include <cstdio>
#include <iostream>
#include <stdexcept>

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

std::vector<int64_t> budgets_below(const std::vector<int64_t>& budgets, int64_t relus) {
  std::vector<int64_t> out;
  for (int64_t b : budgets)
    if (b < relus) out.push_back(b);
  return out;
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

bool SnlMethod::run_from(const ReduceOptions& o, const ReducePlan& p, const std::string& from, int64_t start_relus,
                         std::vector<FrontierPoint>& points) const {
  LinearizeOptions l = snl_options(o);
  l.search.replace = replace();
  l.finetune.teacher = p.teacher_dir;
  l.out = util::path_join(o.out, name());
  l.from = from;
  l.budgets = budgets_below(o.budgets, start_relus);
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

void SnlMethod::check_below_teacher(const ReduceOptions& o, const ReducePlan& p) const {
  for (int64_t b : o.budgets)
    if (b >= p.base_relus)
      throw std::invalid_argument("budget " + std::to_string(b) + " is not below the teacher's " +
                                  std::to_string(p.base_relus) + " ReLUs (method " + name() + ")");
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
