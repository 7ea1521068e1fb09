#include "pipeline/linearize.h"

#include <chrono>
#include <sstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "arch/spec.h"
#include "pi/cost.h"
#include "report/format.h"
#include "report/plot.h"
#include "report/table.h"
#include "train/distributed.h"
#include "train/provenance.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

std::string budget_dir(const std::string& out, int64_t budget) {
  return path_join(out, "budget-" + std::to_string(budget));
}

// Live ReLUs per stage (S1..Sk, FC), the head left out.
std::vector<std::pair<std::string, int64_t>> stage_relus(const arch::Network& net) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& st : net.stage_totals())
    if (st.name != "head") out.emplace_back(st.name, st.totals.relus);
  return out;
}

}  // namespace

void share_settings(const train::TrainConfig& from, train::TrainConfig& to) {
  for (const train::Setting& f : train::train_settings())
    if (f.shared) std::visit([&](auto m) { to.*m = from.*m; }, f.member);
}

namespace {

// --from: "" (the teacher), a finished run, or a model spec.
void resolve_start(LinearizeOptions& o) {
  const std::string& teacher = o.finetune.teacher;
  if (teacher.empty()) throw std::invalid_argument("linearize needs --teacher RUN (a finished all-ReLU run)");
  const train::RunResult t = train::require_finished(teacher, "teacher");
  if (o.from.empty()) {
    o.search.train.model = t.spec;
    o.search.start_run = teacher;
  } else if (const auto r = train::finished_result(o.from)) {
    o.search.train.model = r->spec;
    o.search.start_run = o.from;
  } else if (util::file_exists(o.from)) {
    throw std::invalid_argument("--from '" + o.from + "' is a directory but not a finished run (no result.json)");
  } else {
    o.search.train.model = arch::parse_spec(o.from).canonical();
    o.search.start_run.clear();
  }
}

train::TrainConfig finetune_config(const LinearizeOptions& o, const train::SnlSnapshot& s) {
  train::TrainConfig c = o.finetune;
  c.model = o.search.train.model;
  c.out = budget_dir(o.out, s.budget);
  c.masks_from = path_join(s.dir, "masks.pt");
  c.init_weights = path_join(s.dir, "weights.pt");
  c.init.clear();
  if (o.epochs_per_point > 0) c.epochs = std::max<int64_t>(1, o.epochs_per_point - s.epoch);
  return c;
}

// Shard 0 searches; the others wait for its result (or stop, without --wait).
std::optional<train::SnlResult> search(const LinearizeOptions& o, train::Distributed* dist) {
  if (o.sweep.shard.owns(0)) return train::snl_search(o.search, dist);
  for (bool first = true;; first = false) {
    if (auto r = train::finished_search(o.search.train.out)) return r;
    if (!o.sweep.wait) {
      std::cerr << "[search] shard " << o.sweep.shard.str() << ": the mask search (shard 0's) is not finished yet; "
                << "run this command again when it is\n";
      return std::nullopt;
    }
    if (first) std::cerr << "[search] shard " << o.sweep.shard.str() << " waiting for shard 0's mask search\n";
    std::this_thread::sleep_for(std::chrono::seconds(10));
  }
}

// ", at most 1% of the live ReLUs flipping a step" (or "", unpaced): the polynomial search's pace.
std::string flip_pace(const train::SnlOptions& o) {
  if (o.flip_rate <= 0) return "";
  std::ostringstream t;
  t << ", at most " << 100 * o.flip_rate << "% of the live ReLUs flipping a step";
  return t.str();
}

void print_plan(const LinearizeOptions& o) {
  const auto in = arch::parse_source(o.finetune.data).input;
  std::cout << (o.search.replace == "poly" ? "Polynomial replacement of " : "SNL linearisation of ") << o.search.train.model << " ("
            << report::thousands(arch::build_network(o.search.train.model, in).totals().relus) << " ReLUs) on "
            << o.finetune.data << ", from "
            << (o.search.start_run.empty() ? "the teacher's weights" : "the weights of " + o.search.start_run)
            << ", KD from " << o.finetune.teacher << "\n  1. mask search"
            << (o.search.replace == "poly" ? ", removed ReLUs replaced by trained quadratics" + flip_pace(o.search) : "")
            << " (Adam lr "
            << o.search.train.lr
            << ", lasso " << o.search.lasso << " x" << o.search.lasso_growth << ", at most " << o.search.train.epochs
            << " epochs) -> " << o.search.train.out << "\n  2. per budget, the snapshot fine-tuned "
            << (o.epochs_per_point > 0
                    ? "for " + std::to_string(o.epochs_per_point) + " epochs minus its search epochs (at least 1)"
                    : std::to_string(o.finetune.epochs) + " epochs")
            << " (" << o.finetune.schedule << ", lr " << o.finetune.lr << ") with KD:";
  for (int64_t b : o.budgets) std::cout << " " << budget_dir(o.out, b);
  std::cout << "\n";
}

}  // namespace

LinearizeOptions LinearizeOptions::defaults() {
  LinearizeOptions o;
  o.finetune.lr = 1e-3;
  o.finetune.nesterov = false;
  o.finetune.schedule = "cosine";
  o.finetune.epochs = 100;
  return o;
}

void validate_settings(const LinearizeOptions& o) {
  o.search.validate_settings(o.flags.search_prefix);
  train::check_integer(o.flags.finetune_epochs, o.finetune.epochs, 1, train::kMaxEpochs);
  train::check_integer(o.flags.epochs_per_point, o.epochs_per_point, 0, train::kMaxEpochs);
  report::check_plot_format(o.plot_ext);
  check_sweep(o.sweep);
}

void validate(LinearizeOptions& o) {
  train::check_budget_list(o.budgets);
  validate_settings(o);
  check_output_dir(o.out, "linearize", {"search/config.json", "budget-*"});
  resolve_start(o);
  share_settings(o.finetune, o.search.train);
  o.search.budgets = o.budgets;
  o.search.train.out = path_join(o.out, "search");
  o.finetune.model = o.search.train.model;
  o.finetune.validate();
  o.search.validate(o.flags.search_prefix);
  // What the search's early warning compares its projection with.
  const bool per_point = o.epochs_per_point > 0;
  o.search.expect = {per_point ? o.epochs_per_point : o.finetune.epochs,
                     per_point ? o.flags.epochs_per_point : o.flags.finetune_epochs, o.flags.search_prefix};
}

std::vector<LinearizedPoint> run_linearize(LinearizeOptions o, train::Distributed* dist) {
  const bool rank0 = !dist || dist->rank() == 0;
  check_sweep_for_ranks(o.sweep, dist);  // before the search, which is no phase of its own
  validate(o);
  if (rank0) print_plan(o);
  if (o.dry_run) return {};
  if (dist) dist->barrier();  // every rank has checked --out before rank 0 writes in it
  if (rank0) util::remove_stale_temporaries(o.out);  // a report a kill left half-written
  const auto found = search(o, dist);
  if (!found) return {};
  std::vector<Job> jobs;
  for (const auto& s : found->snapshots)
    jobs.push_back({"budget " + report::thousands(s.budget) + " fine-tune", finetune_config(o, s)});
  size_t index = 1;  // job 0 was the search
  const std::optional<Runs> runs = run_phase("fine-tune", jobs, o.sweep, index, dist);
  if (!runs) return {};
  std::vector<LinearizedPoint> points;
  for (const auto& s : found->snapshots) {
    const std::string run = budget_dir(o.out, s.budget);
    const train::RunResult& r = runs->at(run);
    const arch::Network net = train::run_network(run);
    points.push_back({s.budget, r.relus, run, r.test_acc, s.epoch, r.epochs, stage_relus(net), net.totals().polys});
  }
  if (rank0) linearize_report(o, points);
  return points;
}

namespace {

report::Table points_table(const std::vector<LinearizedPoint>& points, double teacher_acc, bool poly) {
  std::vector<report::Column> cols = {{"budget", "budget", true}, {"relus", "live ReLUs", true}};
  if (poly) cols.push_back({"polys", "poly elements", true});
  for (const report::Column& c : std::vector<report::Column>{{"acc", "accuracy (%)", true},
                                                             {"delta", "vs teacher", true},
                                                             {"search", "search epochs", true},
                                                             {"finetune", "fine-tune epochs", true},
                                                             {"run", "run"}})
    cols.push_back(c);
  report::Table t(cols);
  for (const auto& p : points) {
    std::vector<nlohmann::json> row = {p.budget, p.relus};
    if (poly) row.push_back(p.polys);
    for (const nlohmann::json& v : {nlohmann::json(100 * p.acc), nlohmann::json(100 * (p.acc - teacher_acc)),
                                    nlohmann::json(p.search_epochs), nlohmann::json(p.finetune_epochs),
                                    nlohmann::json(p.run)})
      row.push_back(v);
    t.add_row(row);
  }
  t.set_display("acc", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  t.set_display("delta", [](const nlohmann::json& v) {
    return (v.get<double>() >= 0 ? "+" : "") + report::fixed(v.get<double>(), 2);
  });
  return t;
}

// Where the learned masks put their ReLUs: each stage's share of the live ReLUs.
report::Table stage_table(const std::vector<LinearizedPoint>& points, const arch::Network& start) {
  const auto start_per = stage_relus(start);
  std::vector<report::Column> cols = {{"network", "network"}};
  std::vector<std::string> stages;
  for (const auto& [name, n] : start_per) stages.push_back(name), cols.push_back({name, name + " %", true});
  report::Table t(cols);
  auto add = [&](const std::string& name, const std::vector<std::pair<std::string, int64_t>>& per) {
    int64_t all = 0;
    for (const auto& [s, n] : per) all += n;
    std::vector<nlohmann::json> row = {name};
    for (const auto& s : stages) {
      int64_t n = 0;
      for (const auto& [name2, k] : per)
        if (name2 == s) n = k;
      row.push_back(all ? 100.0 * n / all : 0.0);
    }
    t.add_row(row);
  };
  add("start (" + report::thousands(start.totals().relus) + ")", start_per);
  for (const auto& p : points) add("budget " + report::thousands(p.budget), p.stage_relus);
  for (const auto& s : stages) t.set_display(s, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
  return t;
}

void plot_stage_share(const std::string& file, const report::Table& shares, const std::string& title) {
  const nlohmann::json rows = shares.to_json();
  std::vector<std::string> stages;
  for (const auto& c : shares.columns())
    if (c.key != "network") stages.push_back(c.key);
  std::vector<report::BarSeries> series;
  for (const auto& r : rows) {
    report::BarSeries s{r["network"].get<std::string>(), {}};
    for (const auto& st : stages) s.values.push_back(r[st].get<double>());
    series.push_back(s);
  }
  report::plot_grouped_bars(file, title, stages, series, "% of the network's live ReLUs");
}

}  // namespace

std::string linearize_report(const LinearizeOptions& o, const std::vector<LinearizedPoint>& points) {
  const train::RunResult teacher = *train::finished_result(o.finetune.teacher);
  const arch::Network start = arch::build_network(o.search.train.model, arch::parse_source(o.finetune.data).input);
  const bool poly = o.search.replace == "poly";
  const std::string what = poly ? "Polynomial replacement" : "SNL linearisation";
  const report::Table table = points_table(points, teacher.test_acc, poly);
  const report::Table shares = stage_table(points, start);
  const std::string plot = path_join(o.out, "frontier." + o.plot_ext);
  report::XYSeries snl{poly ? "polynomial replacement (fine-tuned)" : "SNL (fine-tuned)", {}, true, true, ""},
      base{"teacher", {}, false, false, "baseline"};
  for (const auto& p : points) snl.points.push_back({double(p.relus), 100 * p.acc, report::si(double(p.relus))});
  base.points.push_back({double(teacher.relus), 100 * teacher.test_acc, ""});
  report::plot_xy(plot, what + " of " + start.spec + " on " + o.finetune.data,
                  poly ? "ReLU count (log scale; polynomial elements not counted)" : "ReLU count (log scale)",
                  "test accuracy (%)", true, {snl, base});
  plot_stage_share(path_join(o.out, "stage_share." + o.plot_ext), shares,
                   "Where the ReLUs are: " + start.spec + " and its " + (poly ? "ReLU/polynomial" : "SNL") +
                       " masks per budget");
  const nlohmann::json results = {{"method", poly ? "poly" : "snl"},
                                  {"start", start.spec},
                                  {"from", o.from},
                                  {"teacher", teacher.to_json()},
                                  {"points", table.to_json()},
                                  {"stage_share", shares.to_json()},
                                  {"search", o.search.to_json()},
                                  {"finetune", o.finetune.to_json()},
                                  {"provenance", train::provenance(o.finetune.device, o.finetune.threads)}};
  util::write_file_atomic(path_join(o.out, "results.json"), results.dump(2) + "\n");
  std::string md = "# " + what + ": " + start.spec + " on " + o.finetune.data + "\n\n";
  md += "Masks learned from " + (o.search.start_run.empty() ? std::string("the teacher's weights") : o.search.start_run) +
        " (" + report::thousands(start.totals().relus) + " ReLUs); KD from `" + o.finetune.teacher + "` (" +
        report::fixed(100 * teacher.test_acc, 2) + "%, " + report::thousands(teacher.relus) + " ReLUs).\n\n";
  if (poly)
    md += "Every ReLU the search removed became its channel's trained quadratic a*x^2 + b*x + c (AutoReP-style, "
          "coefficients first fitted to the activations of 2,048 training images" + flip_pace(o.search) +
          "). The ReLU counts leave the "
          "polynomial elements out; each still costs a secure multiplication in private inference (the "
          "`poly elements` column).\n\n";
  md += table.render(report::Format::Markdown) + "\n![frontier](frontier." + o.plot_ext + ")\n\n";
  md += "## Where the masks keep their ReLUs\n\n" + shares.render(report::Format::Markdown) +
        "\n![stage share](stage_share." + o.plot_ext + ")\n\n" +
        train::provenance_line(results["provenance"]) + "\n";
  util::write_file_atomic(path_join(o.out, "report.md"), md);
  std::cout << "\n" << (poly ? "Polynomial-replacement frontier" : "SNL frontier") << "\n" << table.render(report::Format::Table) << "\nShare of live ReLUs per stage\n"
            << shares.render(report::Format::Table);
  return path_join(o.out, "report.md");
}

}  // namespace dr::pipeline
