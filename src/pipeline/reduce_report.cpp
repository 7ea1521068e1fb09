#include "pipeline/reduce_report.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <set>

#include "arch/spec.h"
#include "pi/cost_table.h"
#include "pi/private_cost.h"
#include "pipeline/criticality.h"
#include "pipeline/jobs.h"
#include "pipeline/private_inference.h"
#include "report/format.h"
#include "report/plot.h"
#include "report/table.h"
#include "planner/pareto.h"
#include "train/provenance.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

// One network of the report: a frontier point (or the baseline), its
// estimated PI cost and, with --measure-pi, its measured private inference.
struct Row {
  FrontierPoint point;
  pi::NetworkCost cost;
  nlohmann::json measured;  // deepreduce pi run's summary (--measure-pi), else null
  // deepreduce's runtime: exact bytes and rounds, modelled latency; none for
  // a network it cannot run.
  std::optional<pi::PrivateCost> runtime;
};

// Whether a row has polynomial elements: they are no ReLUs but cost a secure
// multiplication each, so the tables give them a column of their own.
bool any_polys(const std::vector<Row>& rows) {
  return std::any_of(rows.begin(), rows.end(), [](const Row& r) { return r.point.polys > 0; });
}

std::optional<pi::PrivateCost> runtime_cost(const arch::Network& net, const ReducePlan& plan) {
  try {
    return pi::private_cost(net, plan.time_model, plan.relu_gate);
  } catch (const std::runtime_error&) {  // mpc::UnsupportedError: what the runtime cannot run
    return std::nullopt;
  }
}

// The private inference of one run on N test images: OUT/pi/<run>.json
// holds it, so a continued reduce measures each network once.
nlohmann::json measure_pi(const ReportInput& in, const std::string& run, const std::string& spec) {
  const ReduceOptions& o = in.options;
  std::string key = run_name(spec);
  std::replace(key.begin(), key.end(), ' ', '_');
  if (o.measure_pi_gate != "dcf") key += "_" + o.measure_pi_gate;  // the default gate keeps the older file names
  std::replace(key.begin(), key.end(), ':', '-');
  const std::string file = path_join(path_join(o.out, "pi"), key + ".json");
  if (util::file_exists(file)) {
    const auto j = nlohmann::json::parse(util::read_file(file));
    // A measurement of an older build, without the whole bill, is taken again.
    if (j.value("images", int64_t(0)) == o.measure_pi && j.value("run", "") == run && j.contains("bill_per_image"))
      return j;
  }
  std::cerr << "[pi] private inference of " << spec << " on " << o.measure_pi << " images\n";
  PiRunOptions pr;
  pr.run = run;
  pr.data = o.train.data;
  pr.count = o.measure_pi;
  pr.quiet = true;
  pr.deal_first = true;  // the frontier's latency without the dealer's work on the same cores
  if (is_auto_relu_gate(o.measure_pi_gate))
    pr.auto_gate = o.measure_pi_gate;
  else
    pr.relu_gate = mpc::parse_relu_gate(o.measure_pi_gate);
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
  auto row = [&](const FrontierPoint& p) {
    const arch::Network net = train::run_network(p.run);
    return Row{p, pi::estimate(net, model, protocols), nullptr, runtime_cost(net, in.plan)};
  };
  std::vector<Row> rows = {
      row({"", "baseline (teacher)", teacher.spec, in.plan.teacher_dir, teacher.relus, teacher.test_acc})};
  for (const FrontierPoint& p : in.points) rows.push_back(row(p));
  if (in.options.measure_pi > 0)
    for (auto& r : rows) {
      const FrontierPoint& p = r.point;
      r.measured = measure_pi(in, p.run, (p.method.empty() ? "baseline" : p.method) + " " + p.network);
    }
  return rows;
}

report::Table steps_table(const std::vector<Row>& rows, const std::set<size_t>& on_front,
                          const std::vector<const pi::Protocol*>& protocols) {
  std::vector<report::Column> cols = {{"method", "method"},           {"step", "optimisation step"}, {"spec", "network"},
                                      {"relus", "ReLUs", true},       {"reduction", "ReLU reduction", true},
                                      {"acc", "accuracy (%)", true},  {"delta", "vs baseline", true},
                                      {"pareto", "Pareto"}};
  const bool polys = any_polys(rows);
  if (polys) cols.insert(cols.begin() + 4, {"polys", "poly elements", true});
  const bool measured = !rows.front().measured.is_null();
  if (measured)
    for (report::Column c : {report::Column{"pi_mb", "measured MB", true}, {"pi_s", "measured s", true},
                             {"pi_lan_s", "LAN s", true}, {"pi_wan_s", "WAN s", true},
                             {"pi_offline_s", "offline s", true}, {"pi_key_mb", "key MB", true},
                             {"pi_agree", "agreement", true}})
      cols.push_back(c);
  for (const auto& c : pi::cost_columns(protocols)) cols.push_back(c);
  report::Table t(cols);
  const FrontierPoint& base = rows.front().point;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const FrontierPoint& p = r.point;
    std::vector<nlohmann::json> cells = {p.method.empty() ? "-" : p.method, p.label, p.network, p.relus,
                                         double(base.relus) / p.relus, 100 * p.acc,
                                         100 * (p.acc - base.acc), on_front.count(i) ? "yes" : ""};
    if (polys) cells.insert(cells.begin() + 4, p.polys);
    if (measured) {
      const nlohmann::json& m = r.measured;
      cells.push_back(m["online_bytes"].get<double>() / m["images"].get<double>() / 1e6);
      cells.push_back(m["seconds_per_image"]);
      cells.push_back(m["modelled"]["lan"]["seconds_per_image"]);
      cells.push_back(m["modelled"]["wan"]["seconds_per_image"]);
      cells.push_back(m["bill_per_image"]["offline_s"]);  // dealer + the slower party's preprocessing
      cells.push_back(m["bill_per_image"]["key_bytes"].get<double>() / 1e6);  // both parties
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
    for (const char* k : {"pi_mb", "pi_key_mb"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
    for (const char* k : {"pi_s", "pi_lan_s", "pi_wan_s", "pi_offline_s", "pi_agree"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 3); });
  }
  return t;
}

// Per budget, the most accurate trained network within it, whatever its
// method: in ReLUs, or in what users pay (the modelled cost).
report::Table budgets_table(const ReportInput& in, const std::vector<Row>& rows) {
  const auto& costs = in.options.cost_budgets;
  report::Table t({{"budget", costs.empty() ? "ReLU budget" : "budget", true}, {"method", "method"}, {"spec", "network"},
                   {"relus", "ReLUs", true}, {"acc", "accuracy (%)", true}});
  const auto add = [&](const nlohmann::json& budget, const std::function<bool(const Row&)>& within) {
    const FrontierPoint* best = nullptr;
    for (const auto& r : rows)
      if (!r.point.method.empty() && within(r) && (!best || r.point.acc > best->acc)) best = &r.point;
    if (best)
      t.add_row({budget, best->method, best->network, best->relus, 100 * best->acc});
    else
      t.add_row({budget, nullptr, "none trained within it", nullptr, nullptr});
  };
  for (int64_t b : in.options.budgets) add(b, [&](const Row& r) { return r.point.relus <= b; });
  for (const pi::CostBudget& b : costs)
    add(b.text(), [&](const Row& r) { return r.runtime && b.of(*r.runtime) <= b.value; });
  display_pct(t, "acc");
  return t;
}

// What the report ranks by: the budgets' unit, else the modelled WAN latency.
pi::CostBudget ranking_unit(const ReduceOptions& o) {
  return o.cost_budgets.empty() ? pi::CostBudget{pi::CostBudget::Unit::Ms, 0, &pi::kWan} : o.cost_budgets.front();
}

// Every method's points (and the baseline) ranked by what a private inference
// costs in deepreduce's runtime, cheapest first; "best so far" marks a point
// more accurate than every cheaper one (the frontier in that cost).
report::Table ranked_table(const ReduceOptions& o, const std::vector<Row>& rows) {
  const pi::CostBudget unit = ranking_unit(o);
  std::vector<const Row*> order;
  for (const auto& r : rows)
    if (r.runtime) order.push_back(&r);
  std::stable_sort(order.begin(), order.end(),
                   [&](const Row* a, const Row* b) { return unit.of(*a->runtime) < unit.of(*b->runtime); });
  const bool polys = any_polys(rows);
  std::vector<report::Column> cols = {{"rank", "rank", true},        {"method", "method"},
                                      {"spec", "network"},           {"relus", "ReLUs", true},
                                      {"acc", "accuracy (%)", true}, {"mb", "online MB", true},
                                      {"rounds", "rounds", true},    {"key_mb", "key MB", true},
                                      {"lan_ms", "LAN ms", true},
                                      {"wan_ms", "WAN ms", true},    {"best", "best so far"}};
  if (polys) cols.insert(cols.begin() + 4, {"polys", "poly elements", true});
  report::Table t(cols);
  double best = -1;
  for (size_t i = 0; i < order.size(); ++i) {
    const Row& r = *order[i];
    const pi::PrivateCost& c = *r.runtime;
    const bool better = r.point.acc > best;
    best = std::max(best, r.point.acc);
    std::vector<nlohmann::json> cells = {static_cast<int64_t>(i + 1),
                                         r.point.method.empty() ? "baseline" : r.point.method,
                                         r.point.network,
                                         r.point.relus,
                                         100 * r.point.acc,
                                         static_cast<double>(c.online_bytes) / 1e6,
                                         c.rounds,
                                         static_cast<double>(c.key_bytes) / 1e6,
                                         1e3 * c.seconds(pi::kLan),
                                         1e3 * c.seconds(pi::kWan),
                                         better ? "yes" : ""};
    if (polys) cells.insert(cells.begin() + 4, r.point.polys);
    t.add_row(cells);
  }
  display_pct(t, "acc");
  for (const char* k : {"mb", "key_mb"})
    t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  for (const char* k : {"lan_ms", "wan_ms"})
    t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
  return t;
}

// How the ranking's figures are made, and the model's provenance.
std::string ranked_paragraph(const ReportInput& in) {
  const pi::TimeModel& m = in.plan.time_model;
  const nlohmann::json& p = m.provenance;
  return "Ranked by " + ranking_unit(in.options).unit_text() + " in deepreduce's private runtime (" + kTrustModel +
         "). Online MB, rounds and key MB (per image, the larger party's key, which the dealer makes and ships) "
         "are the runtime's exact formula (what `pi run` sends and deals); LAN ms and WAN ms are "
         "modelled, not measured: compute from the time model `" + m.path + "` (fitted by bench/pi_time_model.sh on " +
         p.value("cpu", std::string("an unrecorded machine")) + ", commit " + p.value("commit", std::string("?")) +
         ") plus, per round, the link's round trip and the larger direction's bytes at its rate, " + pi::kLan.text +
         " and " + pi::kWan.text + ". Best so far: more accurate than every cheaper network.\n\n";
}

// Accuracy against x(row): the ReLU count, or the measured latency.
void plot_frontier(const ReportInput& in, const std::string& file, const std::string& title, const std::string& xlabel,
                   const std::vector<Row>& rows, const std::function<double(const Row&)>& x) {
  std::vector<planner::Point> points;
  for (const auto& r : rows) points.push_back({std::llround(x(r) * 1e9), r.point.acc});  // fronts compare x as integers
  // One series per method: points labelled with their specs, or a line over the budgets.
  std::vector<report::XYSeries> series;
  for (const auto& method : in.methods) {
    const bool labelled = method->labelled_points();
    report::XYSeries m{method->title(), {}, !labelled, labelled, ""};
    for (const auto& r : rows)
      if (r.point.method == method->name()) m.points.push_back({x(r), 100 * r.point.acc, labelled ? r.point.network : ""});
    std::sort(m.points.begin(), m.points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
    if (!m.points.empty()) series.push_back(m);
  }
  report::XYSeries frontier{"Pareto frontier", {}, true, false, "frontier"}, base{"baseline (teacher)", {}, false, false, "baseline"};
  for (size_t i : planner::pareto_front(points)) frontier.points.push_back({x(rows[i]), 100 * rows[i].point.acc, ""});
  base.points.push_back({x(rows[0]), 100 * rows[0].point.acc, ""});
  series.push_back(frontier);
  series.push_back(base);
  report::plot_xy(file, title, xlabel, "test accuracy (%)", true, series);
}

// What each method trained: DeepReDuce's networks (teacher, criticality,
// candidates) with the --epochs schedule; the SNL points in snl_paragraph.
std::string settings_paragraph(const ReportInput& in) {
  const train::TrainConfig& c = in.options.train;
  const arch::InputSpec& input = in.plan.input;
  std::string md = "Input " + input.shape.str() + ", " + std::to_string(input.classes) + " classes" +
                   (c.limit > 0 ? ", the first " + std::to_string(c.limit) + " train and test images only" : "") + ". ";
  std::vector<std::string> who;  // what trained with --epochs here
  if (in.options.teacher.empty()) who.push_back("the teacher (all-ReLU baseline)");
  if (!in.criticality.empty()) who.push_back("the criticality runs");
  if (std::any_of(in.methods.begin(), in.methods.end(), [](const auto& m) { return m->trained_deepreduce_networks(); }))
    who.push_back("the DeepReDuce networks");
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

// How each method made its points (the SNL methods: their settings, with
// links to their own reports).
std::string notes_paragraph(const ReportInput& in) {
  std::string notes;
  for (const auto& m : in.methods) m->add_report_notes(in.options, notes);
  return notes.empty() ? "" : notes + "\n\n";
}

std::string report_markdown(const ReportInput& in, const train::RunResult& teacher, const std::vector<Row>& rows,
                            const std::vector<size_t>& front, const report::Table& steps,
                            const report::Table& budgets, const report::Table& ranked, const pi::CostModel& model,
                            const std::string& plot) {
  std::string md = "# Reduce report (" + util::join(in.options.methods, ", ") + "): " + in.plan.base_spec + " on " +
                   in.options.train.data + "\n\n";
  md += settings_paragraph(in) + notes_paragraph(in);
  md += "Baseline (teacher, `" + in.plan.teacher_dir + "`): " + teacher.spec + ", " + report::thousands(teacher.relus) +
        " ReLUs, test accuracy " + pct(teacher.test_acc) + "%.\n\n";
  if (!in.criticality.empty())
    md += "## Stage criticality\n\n" + criticality_table(in.criticality).render(report::Format::Markdown) + "\n";
  if (!in.plan.order.empty())
    md += "Least to most critical: " + util::join(in.plan.order, " < ") +
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
  md += std::string("## Best network per ") + (in.options.cost_budgets.empty() ? "ReLU budget" : "budget") + "\n\n" +
        budgets.render(report::Format::Markdown) + "\n";
  if (!in.options.cost_budgets.empty())
    md += "Within a budget: the network's " + ranking_unit(in.options).unit_text() + " (" +
          ranking_unit(in.options).basis(in.plan.time_model) + "; the ranking below) at most the budget's.\n\n";
  md += "## Ranked by what a private inference costs\n\n" + ranked.render(report::Format::Markdown) + "\n" +
        ranked_paragraph(in);
  md += "## Pareto frontier\n\n![ReLU count vs accuracy](" + std::filesystem::path(plot).filename().string() +
        ")\n\nFrontier points (fewest ReLUs first): ";
  for (size_t k = 0; k < front.size(); ++k)
    md += (k ? ", " : "") + rows[front[k]].point.network + " (" + report::thousands(rows[front[k]].point.relus) + ", " +
          pct(rows[front[k]].point.acc) + "%)";
  nlohmann::json p = in.provenance;
  const std::string started = p.value("started", "");
  p.erase("started");
  md += ".\n\nReduce started " + started + " with " + train::provenance_line(p) + ".\n";
  return md;
}

}  // namespace

std::string write_reduce_report(const ReportInput& in) {
  const ReduceOptions& o = in.options;
  const train::RunResult& teacher = in.plan.runs.at(in.plan.teacher_dir);
  const pi::CostModel model = pi::load_cost_model();
  const auto protocols = pi::select_protocols(model, o.protocols);
  const std::vector<Row> rows = collect_rows(in, teacher, model, protocols);
  std::vector<planner::Point> points;
  for (const auto& r : rows) points.push_back({r.point.relus, r.point.acc});
  const auto front = planner::pareto_front(points);
  const report::Table steps = steps_table(rows, {front.begin(), front.end()}, protocols);
  const report::Table budgets = budgets_table(in, rows);
  const report::Table ranked = ranked_table(o, rows);
  const std::string plot = path_join(o.out, "frontier." + o.plot_ext);
  plot_frontier(in, plot, util::join(o.methods, ", ") + ": " + in.plan.base_spec + " on " + o.train.data,
                "ReLU count (log scale)", rows, [](const Row& r) { return double(r.point.relus); });
  if (o.measure_pi > 0)
    plot_frontier(in, path_join(o.out, "frontier_latency." + o.plot_ext),
                  "DeepReDuce: " + in.plan.base_spec + " on " + o.train.data + ", measured private inference",
                  "private-inference latency per image, s (log scale; loopback, semi-honest 2PC with a dealer)", rows,
                  [](const Row& r) { return r.measured["seconds_per_image"].get<double>(); });

  nlohmann::json results = {
      {"model", in.plan.base_spec},      {"data", o.train.data},     {"input", in.plan.input.shape.str()},
      {"classes", in.plan.input.classes}, {"order", in.plan.order},  {"teacher", teacher.to_json()},
      {"methods", o.methods},             {"settings", o.train.to_json()}, {"steps", steps.to_json()},
      {"budgets", budgets.to_json()},     {"ranked_by_cost", ranked.to_json()},
      {"time_model", {{"path", in.plan.time_model.path}, {"provenance", in.plan.time_model.provenance}}},
      {"provenance", in.provenance}};
  for (const auto& m : in.methods) m->add_results(o, results);
  util::write_file_atomic(path_join(o.out, "results.json"), results.dump(2) + "\n");
  const std::string report_path = path_join(o.out, "report.md");
  util::write_file_atomic(report_path, report_markdown(in, teacher, rows, front, steps, budgets, ranked, model, plot));
  std::cout << "\nOptimisation steps\n" << steps.render(report::Format::Table) << "\nBest per budget\n"
            << budgets.render(report::Format::Table) << "\nRanked by " << ranking_unit(o).unit_text()
            << " (modelled; " << kTrustModel << ")\n" << ranked.render(report::Format::Table);
  return report_path;
}

}  // namespace dr::pipeline
