#include "search/pipeline.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <set>
#include <thread>

#include "arch/spec.h"
#include "data/dataset.h"
#include "pi/cost_table.h"
#include "report/format.h"
#include "report/plot.h"
#include "report/table.h"
#include "search/pareto.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace dr::search {

namespace {

namespace fs = std::filesystem;
std::string join_path(const std::string& a, const std::string& b) { return (fs::path(a) / b).string(); }

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

struct Job {
  std::string what;  // for messages
  train::TrainConfig cfg;
};

// Runs the jobs of one phase that belong to this shard (job numbers continue
// across phases through `next_index`), then waits for the others' runs.
// Returns false when other shards' runs are missing and waiting is off.
bool run_phase(const std::string& phase, const std::vector<Job>& jobs, const Shard& shard, bool wait,
               size_t& next_index) {
  std::vector<const Job*> others;
  for (const auto& job : jobs) {
    const size_t index = next_index++;
    if (!shard.owns(index)) {
      others.push_back(&job);
      continue;
    }
    const bool done = train::finished_result(job.cfg.out).has_value();
    std::cerr << "[" << phase << "] " << job.what << " -> " << job.cfg.out << (done ? " (finished, reused)" : "")
              << "\n";
    train::ensure(job.cfg);
  }
  for (bool first = true;; first = false) {
    std::vector<std::string> missing;
    for (const Job* j : others)
      if (!train::finished_result(j->cfg.out)) missing.push_back(j->cfg.out);
    if (missing.empty()) return true;
    if (!wait) {
      std::cerr << "[" << phase << "] shard " << shard.str() << " has finished its runs; " << missing.size()
                << " run(s) of other shards are not finished yet (" << join(missing, ", ")
                << "). Run this command again when they are.\n";
      return false;
    }
    if (first)
      std::cerr << "[" << phase << "] shard " << shard.str() << " waiting for " << missing.size()
                << " run(s) of other shards: " << join(missing, ", ") << "\n";
    std::this_thread::sleep_for(std::chrono::seconds(10));
  }
}

train::TrainConfig job_config(const train::TrainConfig& base, const std::string& spec, const std::string& out,
                              const std::string& teacher, bool init_from_teacher) {
  train::TrainConfig c = base;
  c.model = spec;
  c.out = out;
  c.teacher = teacher;
  c.init = init_from_teacher && !teacher.empty() ? "teacher" : "";
  return c;
}

arch::InputSpec data_input(const std::string& data) {
  // The network's input comes from the data; read one image to learn it.
  const data::DataSplit d = data::load_dataset(data, 1);
  return {{d.train.channels(), d.train.height(), d.train.width()}, d.train.classes};
}

std::string pct(double acc) { return report::fixed(100.0 * acc, 2); }

// The candidates picked for each budget, as the plan printed before training.
std::string plan_table(const std::vector<BudgetPlan>& plans) {
  report::Table t({{"budget", "budget", true}, {"step", "step"}, {"spec", "network"}, {"relus", "ReLUs", true}});
  for (const auto& p : plans)
    for (const auto& c : p.picks) t.add_row({p.budget, c.step_name, c.spec, c.relus});
  return t.render(report::Format::Table);
}

void write_criticality_files(const std::string& out, const std::string& family_spec,
                             const CriticalityResult& r) {
  nlohmann::json j = {{"model", family_spec}, {"order", r.order}, {"stages", nlohmann::json::array()}};
  report::Table t({{"stage", "stage"},
                   {"relus", "ReLUs", true},
                   {"acc_no_kd", "acc w/o KD (%)", true},
                   {"acc_kd", "acc w/ KD (%)", true},
                   {"criticality", "C_k", true}});
  for (const auto& s : r.rows) {
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    j["stages"].push_back({{"stage", s.stage},
                           {"relus", s.relus},
                           {"acc_no_kd", opt(s.acc_no_kd)},
                           {"acc_kd", opt(s.acc_kd)},
                           {"criticality", s.criticality}});
    t.add_row({s.stage, s.relus, opt(s.acc_no_kd), opt(s.acc_kd), s.criticality});
  }
  for (const char* k : {"acc_no_kd", "acc_kd", "criticality"})
    t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  util::write_file_atomic(join_path(out, "criticality.json"), j.dump(2) + "\n");
  util::write_file_atomic(join_path(out, "criticality.md"),
                          "# Stage criticality: " + family_spec + "\n\n" + t.render(report::Format::Markdown) +
                              "\nLeast to most critical: " + join(r.order, " < ") +
                              "\n\nC_k = (A_k - min_j A_j) / (R_k / 1000)^0.07 on the " +
                              (r.rows.front().acc_kd ? "KD" : "no-KD") + " accuracies.\n");
  std::cout << "Stage criticality of " << family_spec << "\n" << t.render(report::Format::Table)
            << "least to most critical: " << join(r.order, " < ") << "\n";
}

}  // namespace

std::string run_name(const std::string& spec) {
  std::string s;
  for (char c : spec) s += c == ':' ? '_' : c == '=' ? '-' : c == ',' ? '+' : c;
  return s;
}

CriticalityResult run_criticality(const CriticalityOptions& o) {
  if (o.train.teacher.empty()) throw std::invalid_argument("criticality needs --teacher DIR (a finished baseline run)");
  if (!train::finished_result(o.train.teacher))
    throw std::invalid_argument("teacher '" + o.train.teacher + "' is not a finished run (no result.json)");
  const arch::ModelSpec base = arch::parse_spec(o.train.model);
  if (!base.cull.empty() || !base.keep.empty() || base.thin)
    throw std::invalid_argument("--model '" + o.train.model + "': give the family spec without cull, keep or thin");
  const auto& fam = arch::family_info(base.family);
  const arch::InputSpec in = data_input(o.train.data);

  std::vector<Job> jobs;
  std::vector<StageRow> rows;
  for (const auto& stage : fam.stages) {
    arch::ModelSpec s = base;
    s.keep = {stage};
    const std::string spec = s.canonical();
    rows.push_back({stage, arch::build_network(s, in).totals().relus, std::nullopt, std::nullopt, 0});
    jobs.push_back({"keep " + stage + " with KD", job_config(o.train, spec, join_path(o.out, "keep-" + stage + ".kd"),
                                                             o.train.teacher, false)});
    if (o.without_kd)
      jobs.push_back({"keep " + stage + " without KD",
                      job_config(o.train, spec, join_path(o.out, "keep-" + stage + ".nokd"), "", false)});
  }
  size_t index = 0;
  CriticalityResult r;
  if (!run_phase("criticality", jobs, o.shard, o.wait, index)) return r;
  for (auto& row : rows) {
    row.acc_kd = 100.0 * train::finished_result(join_path(o.out, "keep-" + row.stage + ".kd"))->test_acc;
    if (o.without_kd)
      row.acc_no_kd = 100.0 * train::finished_result(join_path(o.out, "keep-" + row.stage + ".nokd"))->test_acc;
  }
  score_criticality(rows);
  r.rows = rows;
  r.order = least_to_most_critical(rows);
  r.complete = true;
  write_criticality_files(o.out, base.canonical(), r);
  return r;
}

std::string run_reduce(const ReduceOptions& o) {
  if (o.budgets.empty()) throw std::invalid_argument("--budget needs at least one ReLU budget (e.g. 50K,20K)");
  const arch::ModelSpec base = arch::parse_spec(o.train.model);
  if (!base.cull.empty() || !base.keep.empty() || base.thin)
    throw std::invalid_argument("--model '" + o.train.model +
                                "': give the family spec (alpha, rho, blocks allowed) without cull, keep or thin; "
                                "the pipeline chooses those");
  const auto& fam = arch::family_info(base.family);
  const std::string base_spec = base.canonical();
  const arch::InputSpec in = data_input(o.train.data);
  const arch::Network base_net = arch::build_network(base, in);

  std::vector<std::string> order;
  if (!o.order.empty()) {
    for (size_t p = 0, q; p <= o.order.size(); p = q + 1) {
      q = o.order.find(',', p);
      if (q == std::string::npos) q = o.order.size();
      order.push_back(o.order.substr(p, q - p));
    }
  }
  const std::string crit_dir = join_path(o.out, "criticality");
  if (order.empty() && util::file_exists(join_path(crit_dir, "criticality.json")))
    order = nlohmann::json::parse(util::read_file(join_path(crit_dir, "criticality.json")))["order"]
                .get<std::vector<std::string>>();

  // The plan, printed before anything trains. Budgets are checked against the
  // candidates here too, so an impossible budget fails before any training.
  const bool order_known = !order.empty();
  const std::vector<std::string> plan_order = order_known ? order : fam.stages;
  const auto candidates = deepreduce_candidates(base_spec, plan_order, in);
  const auto plans = plan_budgets(candidates, o.budgets, o.per_budget);

  const std::string teacher_dir = o.teacher.empty() ? join_path(o.out, "teacher") : o.teacher;
  std::cout << "DeepReDuce plan for " << base_spec << " on " << o.train.data << " (" << in.shape.str() << ", "
            << in.classes << " classes), baseline " << report::thousands(base_net.totals().relus) << " ReLUs\n";
  std::cout << "  1. teacher: " << teacher_dir
            << (o.teacher.empty() ? " (the all-ReLU baseline, trained here)" : " (given)") << "\n";
  if (order_known)
    std::cout << "  2. criticality order " << (o.order.empty() ? "(measured)" : "(given)") << ": "
              << join(order, " < ") << "\n";
  else
    std::cout << "  2. criticality: " << fam.stages.size() << " runs keeping one stage each, with KD"
              << (o.without_kd ? " and without" : "") << " -> " << crit_dir << "\n";
  std::cout << "  3. candidates per budget, trained with KD" << (order_known ? "" : " (the culled stages depend on the "
                                                                                    "measured criticality; shown for "
                                                                                    "the order S1 < S2 < ... until then)")
            << ":\n";
  std::cout << plan_table(plans);
  if (o.dry_run) return "";

  size_t index = 0;
  // 1. teacher
  if (o.teacher.empty()) {
    if (!run_phase("teacher", {{"baseline " + base_spec, job_config(o.train, base_spec, teacher_dir, "", false)}},
                   o.shard, o.wait, index))
      return "";
  } else if (!train::finished_result(o.teacher)) {
    throw std::invalid_argument("teacher '" + o.teacher + "' is not a finished run (no result.json)");
  }
  const train::RunResult teacher = *train::finished_result(teacher_dir);

  // 2. criticality
  std::vector<StageRow> crit_rows;
  if (o.order.empty()) {
    CriticalityOptions co;
    co.train = o.train;
    co.train.model = base_spec;
    co.train.teacher = teacher_dir;
    co.out = crit_dir;
    co.without_kd = o.without_kd;
    co.shard = o.shard;
    co.wait = o.wait;
    // Continue the shard numbering after the teacher job.
    co.shard.index = static_cast<int>((o.shard.index + o.shard.count - index % o.shard.count) % o.shard.count);
    const CriticalityResult cr = run_criticality(co);
    if (!cr.complete) return "";
    index += fam.stages.size() * (o.without_kd ? 2 : 1);
    crit_rows = cr.rows;
    order = cr.order;
  }

  // 3. candidates under the measured order
  // With the order known up front, the plan printed above is already final.
  const auto final_candidates = order_known ? candidates : deepreduce_candidates(base_spec, order, in);
  const auto final_plans = order_known ? plans : plan_budgets(final_candidates, o.budgets, o.per_budget);
  std::vector<Candidate> picked;
  std::set<std::string> seen;
  for (const auto& p : final_plans)
    for (const auto& c : p.picks)
      if (seen.insert(c.spec).second) picked.push_back(c);
  if (!order_known) {
    std::cout << "\nCandidates under the measured order " << join(order, " < ") << ":\n";
    std::cout << plan_table(final_plans);
  }
  nlohmann::json plan_json = {{"model", base_spec}, {"order", order}, {"candidates", nlohmann::json::array()},
                              {"budgets", nlohmann::json::array()}};
  for (const auto& c : final_candidates)
    plan_json["candidates"].push_back({{"step", c.step}, {"name", c.step_name}, {"spec", c.spec}, {"relus", c.relus}});
  for (const auto& p : final_plans) {
    nlohmann::json picks = nlohmann::json::array();
    for (const auto& c : p.picks) picks.push_back(c.spec);
    plan_json["budgets"].push_back({{"budget", p.budget}, {"picks", picks}});
  }
  util::write_file_atomic(join_path(o.out, "plan.json"), plan_json.dump(2) + "\n");

  std::vector<Job> jobs;
  for (const auto& c : picked)
    jobs.push_back({c.step_name + " (" + report::thousands(c.relus) + " ReLUs)",
                    job_config(o.train, c.spec, join_path(join_path(o.out, "candidates"), run_name(c.spec)),
                               teacher_dir, o.init_from_teacher)});
  if (!run_phase("candidates", jobs, o.shard, o.wait, index)) return "";

  // 4. the report
  const pi::CostModel cost_model = pi::load_cost_model();
  const auto protocols = pi::select_protocols(cost_model, o.protocols);
  struct Row {
    std::string step, spec;
    int64_t relus;
    double acc;
    pi::NetworkCost cost;
  };
  std::vector<Row> rows;
  rows.push_back({"baseline (teacher)", teacher.spec, teacher.relus, teacher.test_acc,
                  pi::estimate(arch::build_network(teacher.spec, in), cost_model, protocols)});
  for (const auto& c : picked) {
    const auto r = train::finished_result(join_path(join_path(o.out, "candidates"), run_name(c.spec)));
    rows.push_back({c.step_name, c.spec, c.relus, r->test_acc,
                    pi::estimate(arch::build_network(c.spec, in), cost_model, protocols)});
  }
  std::vector<Point> points;
  for (const auto& r : rows) points.push_back({r.relus, r.acc});
  const auto front = pareto_front(points);
  const std::set<size_t> on_front(front.begin(), front.end());

  std::vector<report::Column> cols = {{"step", "optimisation step"}, {"spec", "network"},
                                      {"relus", "ReLUs", true},       {"reduction", "ReLU reduction", true},
                                      {"acc", "accuracy (%)", true},  {"delta", "vs baseline", true},
                                      {"pareto", "Pareto"}};
  for (const auto& c : pi::cost_columns(protocols)) cols.push_back(c);
  report::Table steps(cols);
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    std::vector<nlohmann::json> cells = {r.step, r.spec, r.relus, double(teacher.relus) / r.relus, 100 * r.acc,
                                         100 * (r.acc - teacher.test_acc), on_front.count(i) ? "yes" : ""};
    for (auto& c : pi::cost_cells(r.cost)) cells.push_back(c);
    steps.add_row(cells);
  }
  steps.set_display("reduction", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1) + "x"; });
  steps.set_display("acc", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  steps.set_display("delta", [](const nlohmann::json& v) {
    const double d = v.get<double>();
    return (d >= 0 ? "+" : "") + report::fixed(d, 2);
  });
  pi::set_cost_display(steps, protocols);

  report::Table budgets_t({{"budget", "ReLU budget", true}, {"spec", "network"}, {"relus", "ReLUs", true},
                           {"acc", "accuracy (%)", true}});
  for (const auto& p : final_plans) {
    const Candidate* best = nullptr;
    double best_acc = -1;
    for (const auto& c : p.picks) {
      const double a = train::finished_result(join_path(join_path(o.out, "candidates"), run_name(c.spec)))->test_acc;
      if (a > best_acc) best = &c, best_acc = a;
    }
    budgets_t.add_row({p.budget, best->spec, best->relus, 100 * best_acc});
  }
  budgets_t.set_display("acc", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });

  const std::string plot_file = join_path(o.out, "frontier." + o.plot_ext);
  {
    report::XYSeries all{"candidates", {}, false, true, ""}, frontier{"Pareto frontier", {}, true, false, ""},
        base_pt{"baseline (teacher)", {}, false, false, "baseline"};
    for (size_t i = 1; i < rows.size(); ++i)
      all.points.push_back({double(rows[i].relus), 100 * rows[i].acc, rows[i].spec});
    for (size_t i : front) frontier.points.push_back({double(rows[i].relus), 100 * rows[i].acc, ""});
    base_pt.points.push_back({double(rows[0].relus), 100 * rows[0].acc, ""});
    report::plot_xy(plot_file, "DeepReDuce: " + base_spec + " on " + o.train.data, "ReLU count (log scale)",
                    "test accuracy (%)", true, {all, frontier, base_pt});
  }

  nlohmann::json results = {{"model", base_spec},        {"data", o.train.data}, {"input", in.shape.str()},
                            {"classes", in.classes},     {"order", order},       {"teacher", teacher.to_json()},
                            {"settings", o.train.to_json()}, {"steps", steps.to_json()}, {"budgets", budgets_t.to_json()}};
  util::write_file_atomic(join_path(o.out, "results.json"), results.dump(2) + "\n");

  std::string md = "# DeepReDuce report: " + base_spec + " on " + o.train.data + "\n\n";
  md += "Input " + in.shape.str() + ", " + std::to_string(in.classes) + " classes. Every network trained for " +
        std::to_string(o.train.epochs) + " epoch(s), batch " + std::to_string(o.train.batch) + ", lr " +
        report::fixed(o.train.lr, 3) + " (" + o.train.schedule + "), seed " + std::to_string(o.train.seed) +
        (o.train.limit > 0 ? ", on the first " + std::to_string(o.train.limit) + " train and test images only" : "") +
        "; candidates distilled from the teacher (T = " + report::fixed(o.train.kd_T, 1) +
        ", lambda = " + report::fixed(o.train.kd_lambda, 2) + ")" +
        (o.init_from_teacher ? " and started from its weights" : "") + ".\n\n";
  md += "Baseline (teacher, `" + teacher_dir + "`): " + teacher.spec + ", " + report::thousands(teacher.relus) +
        " ReLUs, test accuracy " + pct(teacher.test_acc) + "%.\n\n";
  if (!crit_rows.empty()) {
    md += "## Stage criticality\n\n";
    report::Table ct({{"stage", "stage"}, {"relus", "ReLUs", true}, {"no_kd", "acc w/o KD (%)", true},
                      {"kd", "acc w/ KD (%)", true}, {"c", "C_k", true}});
    for (const auto& r : crit_rows)
      ct.add_row({r.stage, r.relus, r.acc_no_kd ? nlohmann::json(*r.acc_no_kd) : nlohmann::json(nullptr),
                  r.acc_kd ? nlohmann::json(*r.acc_kd) : nlohmann::json(nullptr), r.criticality});
    for (const char* k : {"no_kd", "kd", "c"})
      ct.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
    md += ct.render(report::Format::Markdown) + "\n";
  }
  md += "Least to most critical: " + join(order, " < ") + ". Culling removes the least critical stages first.\n\n";
  md += "## Optimisation steps\n\n" + steps.render(report::Format::Markdown) + "\n";
  md += "PI cost columns: online traffic in MB (ReLUs plus sharing every conv/FC input over a " +
        std::to_string(cost_model.ring_bits) + "-bit ring) and the ReLUs' online time in seconds, per protocol (" +
        cost_model.path + ").\n\n";
  md += "## Best network per ReLU budget\n\n" + budgets_t.render(report::Format::Markdown) + "\n";
  md += "## Pareto frontier\n\n![ReLU count vs accuracy](" + fs::path(plot_file).filename().string() + ")\n\n";
  md += "Frontier points (fewest ReLUs first): ";
  for (size_t k = 0; k < front.size(); ++k)
    md += (k ? ", " : "") + rows[front[k]].spec + " (" + report::thousands(rows[front[k]].relus) + ", " +
          pct(rows[front[k]].acc) + "%)";
  md += ".\n";
  const std::string report_path = join_path(o.out, "report.md");
  util::write_file_atomic(report_path, md);

  std::cout << "\nOptimisation steps\n" << steps.render(report::Format::Table) << "\nBest per budget\n"
            << budgets_t.render(report::Format::Table);
  return report_path;
}

}  // namespace dr::search
