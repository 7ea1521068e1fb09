#include "pipeline/reduce.h"

#include <algorithm>
#include <iostream>
#include <set>
#include <stdexcept>

#include "arch/spec.h"
#include "data/dataset.h"
#include "pi/cost.h"
#include "pipeline/criticality.h"
#include "pipeline/jobs.h"
#include "pipeline/private_inference.h"
#include "pipeline/method.h"
#include "pipeline/reduce_report.h"
#include "report/format.h"
#include "report/table.h"
#include "train/provenance.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

using Methods = std::vector<std::unique_ptr<Method>>;

bool any_uses_criticality(const Methods& methods) {
  return std::any_of(methods.begin(), methods.end(), [](const auto& m) { return m->uses_criticality(); });
}

std::vector<std::string> known_order(const ReduceOptions& o) {
  if (!o.order.empty()) return util::split(o.order, ',');
  const std::string measured = path_join(path_join(o.out, "criticality"), "criticality.json");
  if (!util::file_exists(measured)) return {};
  return nlohmann::json::parse(util::read_file(measured))["order"].get<std::vector<std::string>>();
}

// A given teacher: finished, for --data's input and classes; the --model
// network itself, all-ReLU, where its weights are a start (snl, combined,
// --init-teacher). A KD-only teacher (deepreduce) may be any network.
void check_given_teacher(const ReduceOptions& o, ReducePlan& p, const Methods& methods) {
  train::check_run_for_data(o.teacher, "teacher", o.train.data);
  p.runs[o.teacher] = train::require_finished(o.teacher, "teacher");
  std::vector<std::string> starts;
  for (const auto& m : methods)
    if (!m->starts_from_teacher().empty()) starts.push_back(m->starts_from_teacher());
  if (o.init_from_teacher) starts.push_back("--init-teacher starts the candidates from its weights");
  if (starts.empty()) return;
  const std::string why = util::join(starts, "; ");
  const std::string& spec = p.runs.at(o.teacher).spec;
  if (spec != p.base_spec)
    throw std::invalid_argument("teacher '" + o.teacher + "' is " + spec + ", not the --model network " + p.base_spec +
                                " (" + why + "): give a teacher trained as --model " + p.base_spec +
                                ", or leave --teacher out to train it in " + path_join(o.out, "teacher"));
  if (train::is_masked_run(o.teacher))
    throw std::invalid_argument("teacher '" + o.teacher + "' is a masked run (pixel masks, e.g. an SNL result), not "
                                "the all-ReLU " + p.base_spec + " (" + why + ")");
}

// --measure-pi: at most kMaxMeasurePi images, and no more than --limit
// keeps; the data's own test split is counted once read (check_measured_images).
void check_measure_pi(const ReduceOptions& o) {
  train::check_integer("--measure-pi", o.measure_pi, 0, kMaxMeasurePi);
  if (o.train.limit > 0 && o.measure_pi > o.train.limit)
    throw std::invalid_argument("--measure-pi " + std::to_string(o.measure_pi) + " is more than the " +
                                std::to_string(o.train.limit) + " test images --limit keeps (accepted: 0.." +
                                std::to_string(o.train.limit) + ")");
  if (!is_auto_relu_gate(o.measure_pi_gate)) {
    try {
      mpc::parse_relu_gate(o.measure_pi_gate);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--measure-pi-gate: ") + e.what() + "; or dcf:auto, dpf:auto");
    }
  }
}

// Checks every setting and builds the plan; reads no data file.
ReducePlan make_plan(const ReduceOptions& o, const Methods& methods) {
  std::vector<std::string> outputs = {"plan.json", "teacher/config.json", "criticality"};
  for (const MethodEntry& e : method_registry()) {
    if (e.check_settings) e.check_settings(o);
    outputs.insert(outputs.end(), e.outputs.begin(), e.outputs.end());
  }
  const arch::ModelSpec base = arch::parse_family_spec(o.train.model, "--model");
  o.train.validate();
  pi::select_protocols(pi::load_cost_model(), o.protocols);
  check_measure_pi(o);
  check_output_dir(o.out, "reduce", outputs);
  ReducePlan p;
  p.base_spec = base.canonical();
  p.input = arch::parse_source(o.train.data).input;
  p.base_relus = arch::build_network(base, p.input).totals().relus;
  p.stages = arch::find_family(base.family).stages;
  p.time_model = pi::load_time_model();
  if (!is_auto_relu_gate(o.measure_pi_gate)) p.relu_gate = mpc::parse_relu_gate(o.measure_pi_gate);
  p.teacher_dir = o.teacher.empty() ? path_join(o.out, "teacher") : o.teacher;
  if (!o.teacher.empty()) check_given_teacher(o, p, methods);
  if (o.measure_pi > 0) check_private_runtime(arch::build_network(base, p.input), "--measure-pi");
  p.order = known_order(o);
  p.order_from = p.order.empty() ? "" : o.order.empty() ? "measured" : "given";
  p.candidates = planner::deepreduce_candidates(p.base_spec, p.order.empty() ? p.stages : p.order, p.input);
  for (const auto& m : methods) m->plan(o, p, false);
  return p;
}

void print_plan(const ReduceOptions& o, const ReducePlan& p, const Methods& methods) {
  std::cout << "Plan (" << util::join(o.methods, ", ") << ") for " << p.base_spec << " on " << o.train.data << " ("
            << p.input.shape.str() << ", " << p.input.classes << " classes), baseline "
            << report::thousands(p.base_relus) << " ReLUs\n";
  int step = 0;
  std::cout << "  " << ++step << ". teacher: " << p.teacher_dir
            << (o.teacher.empty() ? " (the all-ReLU baseline, trained here)" : " (given)") << "\n";
  const bool needs_order = any_uses_criticality(methods);
  if (needs_order && !p.order.empty())
    std::cout << "  " << ++step << ". criticality order (" << p.order_from << "): " << util::join(p.order, " < ")
              << "\n";
  else if (needs_order)
    std::cout << "  " << ++step << ". criticality: " << p.stages.size() << " runs keeping one stage each, with KD"
              << (o.without_kd ? " and " + std::to_string(p.stages.size()) + " without" : "") << " -> "
              << path_join(o.out, "criticality") << "\n";
  const int criticality_step = step;
  bool listed = false;
  for (const auto& m : methods) listed = m->print_candidates(o, p, step, listed);
  for (const auto& m : methods) m->print_own(o, p, step);
  if (p.order.empty() && needs_order)
    std::cout << "Which stages are culled depends on the criticality measured in step " << criticality_step
              << ", and with them the ReLU\ncounts and the picks above: they are shown for the order "
              << util::join(p.stages, " < ") << ". Give --order to fix them.\n";
}

// The test images --measure-pi runs on, counted in the data as read (a
// TinyImageNet copy may hold fewer than 10,000): before anything trains,
// not after the frontier's last network.
void check_measured_images(const ReduceOptions& o) {
  if (o.measure_pi == 0) return;
  const int64_t n = data::load_dataset(o.train.data, o.train.limit).test.size();
  if (o.measure_pi > n)
    throw std::invalid_argument("--measure-pi " + std::to_string(o.measure_pi) + " is more than the " +
                                std::to_string(n) + " test images of --data " + o.train.data +
                                (o.train.limit > 0 ? " with --limit " + std::to_string(o.train.limit) : "") +
                                " (accepted: 0.." + std::to_string(n) + ")");
}

// Each phase's runs join p.runs; false when this shard must stop.
bool add_runs(ReducePlan& p, const std::optional<Runs>& runs) {
  if (!runs) return false;
  p.runs.insert(runs->begin(), runs->end());
  return true;
}

bool train_teacher(const ReduceOptions& o, ReducePlan& p, size_t& index) {
  if (!o.teacher.empty()) return true;  // read in make_plan
  return add_runs(p, run_phase("teacher", {{"baseline " + p.base_spec, job_config(o.train, p.base_spec, p.teacher_dir,
                                                                                   "", false)}},
                               o.sweep, index));
}

// Step 2: the measured criticality (rows and order), unless the order is
// known. False when this shard must stop.
bool measure_criticality(const ReduceOptions& o, const ReducePlan& p, size_t& index, CriticalityResult& out) {
  if (!o.order.empty()) {
    out.order = p.order;
    out.complete = true;
    return true;
  }
  CriticalityOptions co;
  co.train = o.train;
  co.train.model = p.base_spec;
  co.train.teacher = p.teacher_dir;
  co.out = path_join(o.out, "criticality");
  co.without_kd = o.without_kd;
  co.sweep = o.sweep;
  // Continue the shard numbering after the jobs so far.
  const planner::Shard& s = o.sweep.shard;
  co.sweep.shard.index = static_cast<int>((s.index + s.count - index % s.count) % s.count);
  out = run_criticality(co);
  index += p.stages.size() * (o.without_kd ? 2 : 1);
  return out.complete;
}

void write_plan_json(const ReduceOptions& o, const ReducePlan& p, const Methods& methods) {
  nlohmann::json j = {{"model", p.base_spec}, {"order", p.order}, {"candidates", nlohmann::json::array()},
                      {"budgets", nlohmann::json::array()}};
  for (const auto& c : p.candidates)
    j["candidates"].push_back({{"step", static_cast<int>(c.step)}, {"name", c.step_name}, {"spec", c.spec}, {"relus", c.relus}});
  for (const auto& m : methods) m->add_plan_json(j);
  util::write_file_atomic(path_join(o.out, "plan.json"), j.dump(2) + "\n");
}

// Step 3: the methods replanned under the final order, the DeepReDuce
// networks they ask for trained with KD.
bool train_candidates(const ReduceOptions& o, ReducePlan& p, const Methods& methods,
                      const std::vector<std::string>& order, size_t& index) {
  if (!order.empty() && order != p.order) {
    p.order = order;
    p.candidates = planner::deepreduce_candidates(p.base_spec, order, p.input);
    for (const auto& m : methods) m->plan(o, p, true);
  }
  write_plan_json(o, p, methods);
  std::vector<Job> jobs;
  std::set<std::string> seen;
  for (const auto& m : methods)
    for (const auto& c : m->candidates())
      if (seen.insert(c.spec).second)
        jobs.push_back({c.step_name + " (" + report::thousands(c.relus) + " ReLUs)",
                        job_config(o.train, c.spec, candidate_dir(o.out, c.spec), p.teacher_dir, o.init_from_teacher)});
  return add_runs(p, run_phase("candidates", jobs, o.sweep, index));
}

}  // namespace

std::string cost_budget_flag(const pi::CostBudget& b) {
  switch (b.unit) {
    case pi::CostBudget::Unit::Ms: return "--budget-ms";
    case pi::CostBudget::Unit::Mb: return "--budget-mb";
    case pi::CostBudget::Unit::KeyMb: return "--budget-key-mb";
  }
  return "";
}

std::vector<std::string> parse_methods(const std::string& text) {
  std::vector<std::string> known;
  for (const MethodEntry& e : method_registry()) known.push_back(e.name);
  if (text == "both") return {"deepreduce", "snl"};
  if (text == "all") return known;
  std::vector<std::string> out;
  for (const auto& m : util::split(text, ',')) {
    if (std::find(known.begin(), known.end(), m) == known.end())
      throw std::invalid_argument("--method '" + text + "': unknown method '" + m + "' (accepted: " +
                                  util::join(known) + ", a comma list, both, all)");
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

std::string run_reduce(const ReduceOptions& o) {
  const Methods methods = make_methods(o.methods);
  ReducePlan p = make_plan(o, methods);
  // Taken once, at the start: results.json and report.md record the same.
  const nlohmann::json started = train::provenance(o.train.device, o.train.threads);
  print_plan(o, p, methods);
  if (o.dry_run) return "";
  check_measured_images(o);
  size_t index = 0;
  if (!train_teacher(o, p, index)) return "";
  CriticalityResult crit;
  if (any_uses_criticality(methods)) {
    if (!measure_criticality(o, p, index, crit)) return "";
    if (!train_candidates(o, p, methods, crit.order, index)) return "";
  }
  std::vector<FrontierPoint> points;
  for (const auto& m : methods)
    if (!m->run(o, p, points)) return "";
  ReportInput in{o, p, methods, crit.rows, points, started};
  return write_reduce_report(in);
}

}  // namespace dr::pipeline
