#include "pipeline/reduce_report.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>

#include "arch/spec.h"
#include "pi/cost_table.h"
#include "pipeline/criticality.h"
#include "pipeline/jobs.h"
#include "pipeline/private_inference.h"
#include "report/format.h"
#include "report/plot.h"
#include "report/table.h"
#include "search/pareto.h"
#include "train/provenance.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

// One trained network of the report.
struct Row {
  std::string method;  // deepreduce, snl, combined ("" for the baseline)
  std::string step, spec;
  int64_t relus = 0;
  double acc = 0;  // test accuracy in [0, 1]
  pi::NetworkCost cost;
  nlohmann::json measured;  // deepreduce pi run's summary (--measure-pi), else null
};

std::string run_of(const ReportInput& in, const Row& r) {
  return r.method.empty() ? in.teacher_dir : r.method == "deepreduce" ? candidate_dir(in.options.out, r.spec) : r.step;
}

// The private inference of one run on N test images: OUT/pi/<run>.json
// holds it, so a continued reduce measures each network once.
nlohmann::json measure_pi(const ReportInput& in, const std::string& run, const std::string& spec) {
  const ReduceOptions& o = in.options;
  std::string key = run_name(spec);
  std::replace(key.begin(), key.end(), ' ', '_');
  const std::string file = path_join(path_join(o.out, "pi"), key + ".json");
  if (util::file_exists(file)) {
    const auto j = nlohmann::json::parse(util::read_file(file));
    if (j.value("images", int64_t(0)) == o.measure_pi && j.value("run", "") == run) return j;
  }
  std::cerr << "[pi] private inference of " << spec << " on " << o.measure_pi << " images\n";
  PiRunOptions pr;
  pr.run = run;
  pr.data = o.train.data;
  pr.count = o.measure_pi;
  pr.quiet = true;
  nlohmann::json j = run_private_inference(pr);
  j["run"] = run;
  util::write_file_atomic(file, j.dump(2) + "\n");
  return j;
}

std::string pct(double acc) { return report::fixed(100.0 * acc, 2); }

void display_pct(report::Table& t, const std::string& key) {
  t.set_display(key, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
}

std::vector<Row> collect_rows(const ReportInput& in, const train::RunResult& teacher, const pi::CostModel& model,
                              const std::vector<const pi::Protocol*>& protocols) {
  auto cost = [&](const std::string& run) { return pi::estimate(train::run_network(run), model, protocols); };
  std::vector<Row> rows = {{"", "baseline (teacher)", teacher.spec, teacher.relus, teacher.test_acc,
                            cost(in.teacher_dir), nullptr}};
  for (const auto& c : picked_candidates(in.budgets)) {
    const std::string dir = candidate_dir(in.options.out, c.spec);
    rows.push_back({"deepreduce", c.step_name, c.spec, c.relus, train::finished_result(dir)->test_acc, cost(dir), nullptr});
  }
  // SNL rows: `step` holds the run directory (run_of), shown as the budget.
  for (const auto* points : {&in.snl, &in.combined})
    for (const auto& p : *points)
      rows.push_back({points == &in.snl ? "snl" : "combined", p.run,
                      train::run_network(p.run).label(), p.relus, p.acc, cost(p.run), nullptr});
  if (in.options.measure_pi > 0)
    for (auto& r : rows) r.measured = measure_pi(in, run_of(in, r), (r.method.empty() ? "baseline" : r.method) + " " + r.spec);
  return rows;
}

report::Table steps_table(const std::vector<Row>& rows, const std::set<size_t>& on_front,
                          const std::vector<const pi::Protocol*>& protocols) {
  std::vector<report::Column> cols = {{"method", "method"},           {"step", "optimisation step"}, {"spec", "network"},
                                      {"relus", "ReLUs", true},       {"reduction", "ReLU reduction", true},
                                      {"acc", "accuracy (%)", true},  {"delta", "vs baseline", true},
                                      {"pareto", "Pareto"}};
  const bool measured = !rows.front().measured.is_null();
  if (measured)
    for (report::Column c : {report::Column{"pi_mb", "measured MB", true}, {"pi_s", "measured s", true},
                             {"pi_lan_s", "LAN s", true}, {"pi_wan_s", "WAN s", true},
                             {"pi_agree", "agreement", true}})
      cols.push_back(c);
  for (const auto& c : pi::cost_columns(protocols)) cols.push_back(c);
  report::Table t(cols);
  const Row& base = rows.front();
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const std::string step = r.method == "snl" || r.method == "combined" ? "SNL to " + report::thousands(r.relus) : r.step;
    std::vector<nlohmann::json> cells = {r.method.empty() ? "-" : r.method, step, r.spec, r.relus,
                                         double(base.relus) / r.relus, 100 * r.acc,
                                         100 * (r.acc - base.acc), on_front.count(i) ? "yes" : ""};
    if (measured) {
      const nlohmann::json& m = r.measured;
      cells.push_back(m["online_bytes"].get<double>() / m["images"].get<double>() / 1e6);
      cells.push_back(m["seconds_per_image"]);
      cells.push_back(m["modelled"]["lan"]["seconds_per_image"]);
      cells.push_back(m["modelled"]["wan"]["seconds_per_image"]);
      cells.push_back(m["agreement"]);
    }
    for (auto& c : pi::cost_cells(r.cost)) cells.push_back(c);
    t.add_row(cells);
  }
  t.set_display("reduction", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1) + "x"; });
  display_pct(t, "acc");
  t.set_display("delta", [](const nlohmann::json& v) {
    const double d = v.get<double>();
    return (d >= 0 ? "+" : "") + report::fixed(d, 2);
  });
  pi::set_cost_display(t, protocols);
  if (measured) {
    t.set_display("pi_mb", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
    for (const char* k : {"pi_s", "pi_lan_s", "pi_wan_s", "pi_agree"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 3); });
  }
  return t;
}

// Per budget, the most accurate of its picks.
// Per budget, the most accurate trained network within it, whatever its method.
report::Table budgets_table(const ReportInput& in, const std::vector<Row>& rows) {
  report::Table t({{"budget", "ReLU budget", true}, {"method", "method"}, {"spec", "network"},
                   {"relus", "ReLUs", true}, {"acc", "accuracy (%)", true}});
  for (int64_t b : in.options.budgets) {
    const Row* best = nullptr;
    for (const auto& r : rows)
      if (!r.method.empty() && r.relus <= b && (!best || r.acc > best->acc)) best = &r;
    if (best)
      t.add_row({b, best->method, best->spec, best->relus, 100 * best->acc});
    else
      t.add_row({b, nullptr, "none trained within it", nullptr, nullptr});
  }
  display_pct(t, "acc");
  return t;
}

// Accuracy against x(row): the ReLU count, or the measured latency.
void plot_frontier(const std::string& file, const std::string& title, const std::string& xlabel,
                   const std::vector<Row>& rows, const std::function<double(const Row&)>& x) {
  std::vector<search::Point> points;
  for (const auto& r : rows) points.push_back({std::llround(x(r) * 1e9), r.acc});  // fronts compare x as integers
  // One series per method: DeepReDuce's candidates labelled with their
  // specs, the SNL methods as lines over their budgets.
  std::vector<report::XYSeries> series;
  const std::pair<const char*, const char*> methods[] = {
      {"deepreduce", "DeepReDuce"}, {"snl", "SNL"}, {"combined", "DeepReDuce + SNL"}};
  for (const auto& [method, title] : methods) {
    const bool deepreduce = std::string(method) == "deepreduce";
    report::XYSeries m{title, {}, !deepreduce, deepreduce, ""};
    for (const auto& r : rows)
      if (r.method == method) m.points.push_back({x(r), 100 * r.acc, deepreduce ? r.spec : ""});
    std::sort(m.points.begin(), m.points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
    if (!m.points.empty()) series.push_back(m);
  }
  report::XYSeries frontier{"Pareto frontier", {}, true, false, "frontier"}, base{"baseline (teacher)", {}, false, false, "baseline"};
  for (size_t i : search::pareto_front(points)) frontier.points.push_back({x(rows[i]), 100 * rows[i].acc, ""});
  base.points.push_back({x(rows[0]), 100 * rows[0].acc, ""});
  series.push_back(frontier);
  series.push_back(base);
  report::plot_xy(file, title, xlabel, "test accuracy (%)", true, series);
}

// What each method trained: DeepReDuce's networks (teacher, criticality,
// candidates) with the --epochs schedule; the SNL points in snl_paragraph.
std::string settings_paragraph(const ReportInput& in) {
  const train::TrainConfig& c = in.options.train;
  std::string md = "Input " + in.input.shape.str() + ", " + std::to_string(in.input.classes) + " classes" +
                   (c.limit > 0 ? ", the first " + std::to_string(c.limit) + " train and test images only" : "") + ". ";
  std::vector<std::string> who;  // what trained with --epochs here
  if (in.options.teacher.empty()) who.push_back("the teacher (all-ReLU baseline)");
  if (!in.criticality.empty()) who.push_back("the criticality runs");
  if (!in.budgets.empty() || !in.combined.empty()) who.push_back("the DeepReDuce networks");
  if (who.empty()) return md + "\n\n";
  std::string list = who[0];
  for (size_t i = 1; i < who.size(); ++i) list += (i + 1 == who.size() ? " and " : ", ") + who[i];
  list[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(list[0])));
  md += list + " trained for " + std::to_string(c.epochs) + " epoch(s), batch " + std::to_string(c.batch) + ", lr " +
        report::fixed(c.lr, 3) + " (" + c.schedule + "), seed " + std::to_string(c.seed);
  if (who.size() > (in.options.teacher.empty() ? 1u : 0u))  // a network besides a teacher trained here
    md += std::string(in.options.teacher.empty() ? "; the others" : ",") + " distilled from the teacher (T = " + report::fixed(c.kd_T, 1) + ", lambda = " + report::fixed(c.kd_lambda, 2) +
          ")" + (in.options.init_from_teacher ? ", the DeepReDuce networks started from its weights" : "");
  md += ".";
  return md + "\n\n";
}

std::string lasso_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// How the SNL methods were run, with the links to their own reports.
std::string snl_paragraph(const ReportInput& in) {
  if (in.snl.empty() && in.combined.empty()) return "";
  const LinearizeOptions& l = in.options.snl;
  std::string md = "SNL points: a mask search (Adam lr " + report::fixed(l.search.train.lr, 4) + ", lasso " +
                   lasso_text(l.search.lasso) + " x" + report::fixed(l.search.lasso_growth, 2) + ", at most " +
                   std::to_string(l.search.train.epochs) + " epochs, stopping at the last budget; " +
                   "each point's search epochs are in its report), each budget's snapshot then fine-tuned with KD (" +
                   (l.epochs_per_point > 0 ? std::to_string(l.epochs_per_point) + " epochs per point in all, search included"
                                           : std::to_string(l.finetune.epochs) + " epochs") +
                   ", " + l.finetune.schedule + ", lr " + report::fixed(l.finetune.lr, 4) + ").";
  if (!in.snl.empty()) md += " SNL starts from the teacher ([its report](snl/report.md)).";
  if (!in.combined.empty())
    md += " DeepReDuce + SNL starts from DeepReDuce's `" + in.combined_start + "` ([its report](combined/report.md)).";
  return md + "\n\n";
}

std::string report_markdown(const ReportInput& in, const train::RunResult& teacher, const std::vector<Row>& rows,
                            const std::vector<size_t>& front, const report::Table& steps,
                            const report::Table& budgets, const pi::CostModel& model, const std::string& plot) {
  std::string md = "# Reduce report (" + util::join(in.options.methods, ", ") + "): " + in.base_spec + " on " +
                   in.options.train.data + "\n\n";
  md += settings_paragraph(in) + snl_paragraph(in);
  md += "Baseline (teacher, `" + in.teacher_dir + "`): " + teacher.spec + ", " + report::thousands(teacher.relus) +
        " ReLUs, test accuracy " + pct(teacher.test_acc) + "%.\n\n";
  if (!in.criticality.empty())
    md += "## Stage criticality\n\n" + criticality_table(in.criticality).render(report::Format::Markdown) + "\n";
  if (!in.order.empty())
    md += "Least to most critical: " + util::join(in.order, " < ") +
          ". Culling removes the least critical stages first.\n\n";
  md += "## Optimisation steps\n\n" + steps.render(report::Format::Markdown) + "\n";
  md += "PI cost columns (estimates, not measurements): online traffic in MB (ReLUs plus sharing every conv/FC "
        "input over a " + std::to_string(model.ring_bits) + "-bit ring) and the ReLUs' online time in seconds, per "
        "protocol (" + model.path + ").\n\n";
  if (in.options.measure_pi > 0)
    md += "Measured columns: `deepreduce pi run` on the first " + std::to_string(in.options.measure_pi) +
          " test images (" + kTrustModel + "; loopback on this machine): online MB and seconds per image, the modelled "
          "LAN (1 Gb/s, 0.5 ms RTT) and WAN (100 Mb/s, 40 ms RTT) seconds, and the share of images whose private "
          "prediction equals the plaintext model's. Accuracy against measured latency: "
          "![latency frontier](frontier_latency." + in.options.plot_ext + ")\n\n";
  md += "## Best network per ReLU budget\n\n" + budgets.render(report::Format::Markdown) + "\n";
  md += "## Pareto frontier\n\n![ReLU count vs accuracy](" + std::filesystem::path(plot).filename().string() +
        ")\n\nFrontier points (fewest ReLUs first): ";
  for (size_t k = 0; k < front.size(); ++k)
    md += (k ? ", " : "") + rows[front[k]].spec + " (" + report::thousands(rows[front[k]].relus) + ", " +
          pct(rows[front[k]].acc) + "%)";
  nlohmann::json p = in.provenance;
  const std::string started = p.value("started", "");
  p.erase("started");
  md += ".\n\nReduce started " + started + " with " + train::provenance_line(p) + ".\n";
  return md;
}

}  // namespace

std::vector<search::Candidate> picked_candidates(const std::vector<search::BudgetPlan>& budgets) {
  std::vector<search::Candidate> picked;
  std::set<std::string> seen;
  for (const auto& p : budgets)
    for (const auto& c : p.picks)
      if (seen.insert(c.spec).second) picked.push_back(c);
  return picked;
}

std::string candidate_dir(const std::string& out, const std::string& spec) {
  return path_join(path_join(out, "candidates"), run_name(spec));
}

std::string write_reduce_report(const ReportInput& in) {
  const ReduceOptions& o = in.options;
  const train::RunResult teacher = *train::finished_result(in.teacher_dir);
  const pi::CostModel model = pi::load_cost_model();
  const auto protocols = pi::select_protocols(model, o.protocols);
  const std::vector<Row> rows = collect_rows(in, teacher, model, protocols);
  std::vector<search::Point> points;
  for (const auto& r : rows) points.push_back({r.relus, r.acc});
  const auto front = search::pareto_front(points);
  const report::Table steps = steps_table(rows, {front.begin(), front.end()}, protocols);
  const report::Table budgets = budgets_table(in, rows);
  const std::string plot = path_join(o.out, "frontier." + o.plot_ext);
  plot_frontier(plot, util::join(o.methods, ", ") + ": " + in.base_spec + " on " + o.train.data, "ReLU count (log scale)", rows,
                [](const Row& r) { return double(r.relus); });
  if (o.measure_pi > 0)
    plot_frontier(path_join(o.out, "frontier_latency." + o.plot_ext),
                  "DeepReDuce: " + in.base_spec + " on " + o.train.data + ", measured private inference",
                  "private-inference latency per image, s (log scale; loopback, semi-honest 2PC with a dealer)", rows,
                  [](const Row& r) { return r.measured["seconds_per_image"].get<double>(); });

  nlohmann::json results = {
      {"model", in.base_spec},      {"data", o.train.data},     {"input", in.input.shape.str()},
      {"classes", in.input.classes}, {"order", in.order},       {"teacher", teacher.to_json()},
      {"methods", o.methods},        {"settings", o.train.to_json()}, {"steps", steps.to_json()},
      {"budgets", budgets.to_json()}, {"provenance", in.provenance}};
  if (!in.snl.empty() || !in.combined.empty()) {
    const LinearizeOptions& l = o.snl;
    // SNL's own settings; data, batch, seed, augmentation, KD T and lambda are `settings`'.
    const nlohmann::json search = {{"optimizer", "adam"},         {"lr", l.search.train.lr},
                                   {"max_epochs", l.search.train.epochs}, {"kd_lambda", l.search.train.kd_lambda},
                                   {"lasso", l.search.lasso},      {"lasso_growth", l.search.lasso_growth},
                                   {"patience_from", l.search.patience_from}, {"threshold", l.search.threshold}};
    const nlohmann::json finetune = {{"optimizer", "sgd"},       {"epochs", l.finetune.epochs},
                                     {"lr", l.finetune.lr},       {"schedule", l.finetune.schedule},
                                     {"momentum", l.finetune.momentum}, {"nesterov", l.finetune.nesterov},
                                     {"wd", l.finetune.wd}};
    results["snl"] = {{"search", search},
                      {"finetune", finetune},
                      {"epochs_per_point", l.epochs_per_point},
                      {"combined_start", in.combined_start},
                      {"results", nlohmann::json::array()}};
    if (!in.snl.empty()) results["snl"]["results"].push_back("snl/results.json");
    if (!in.combined.empty()) results["snl"]["results"].push_back("combined/results.json");
  }
  util::write_file_atomic(path_join(o.out, "results.json"), results.dump(2) + "\n");
  const std::string report_path = path_join(o.out, "report.md");
  util::write_file_atomic(report_path, report_markdown(in, teacher, rows, front, steps, budgets, model, plot));
  std::cout << "\nOptimisation steps\n" << steps.render(report::Format::Table) << "\nBest per budget\n"
            << budgets.render(report::Format::Table);
  return report_path;
}

}  // namespace dr::pipeline
