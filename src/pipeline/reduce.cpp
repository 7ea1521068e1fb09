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
#include "pipeline/reduce_report.h"
#include "report/format.h"
#include "report/table.h"
#include "train/provenance.h"
#include "train/snl.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

// Everything decided before training: checked settings and the candidates.
struct Plan {
  std::string base_spec;
  arch::InputSpec input;
  int64_t base_relus = 0;
  std::vector<std::string> stages;  // the family's stages
  std::string teacher_dir;
  std::vector<std::string> order;   // least to most critical; empty until measured
  std::string order_from;           // "given", "measured" (an earlier run's criticality.json) or ""
  std::vector<search::Candidate> candidates;
  std::vector<search::BudgetPlan> budgets;  // DeepReDuce's picks (empty without that method)
  bool deepreduce = false, snl = false, combined = false;
  search::Candidate combined_start;         // DeepReDuce's cull-1 + thin network, where combined starts
};

// Every method `--method` accepts, in the order `all` lists them.
const std::vector<std::string> kMethods = {"deepreduce", "snl", "combined"};

bool uses(const ReduceOptions& o, const char* method) {
  return std::find(o.methods.begin(), o.methods.end(), method) != o.methods.end();
}

// The network the combined method starts from: the least critical stage
// culled, the others thinned (cull only where the family has no thinning).
search::Candidate combined_start(const std::vector<search::Candidate>& candidates) {
  const search::Candidate* best = nullptr;
  for (const auto& c : candidates)
    if (c.culled == 1 && (c.step == search::Step::Cull || c.step == search::Step::Thin) &&
        (!best || c.step > best->step))
      best = &c;
  if (!best) throw std::invalid_argument("no DeepReDuce network culls exactly one stage here: nothing to combine with");
  return *best;
}

std::vector<int64_t> budgets_below(const std::vector<int64_t>& budgets, int64_t relus) {
  std::vector<int64_t> out;
  for (int64_t b : budgets)
    if (b < relus) out.push_back(b);
  return out;
}

// The SNL methods' budgets: below their starting network's ReLUs.
void check_snl_budgets(const ReduceOptions& o, const Plan& p) {
  for (int64_t b : o.budgets)
    if (p.snl && b >= p.base_relus)
      throw std::invalid_argument("budget " + std::to_string(b) + " is not below the teacher's " +
                                  std::to_string(p.base_relus) + " ReLUs (method snl)");
  if (p.combined && budgets_below(o.budgets, p.combined_start.relus).empty())
    throw std::invalid_argument("no budget is below the " + std::to_string(p.combined_start.relus) + " ReLUs of " +
                                p.combined_start.spec + ", where the combined method starts");
}

std::vector<std::string> known_order(const ReduceOptions& o) {
  if (!o.order.empty()) return util::split(o.order, ',');
  const std::string measured = path_join(path_join(o.out, "criticality"), "criticality.json");
  if (!util::file_exists(measured)) return {};
  return nlohmann::json::parse(util::read_file(measured))["order"].get<std::vector<std::string>>();
}

// The SNL methods' LinearizeOptions (run_snl) as far as they are known
// before the teacher exists.
LinearizeOptions snl_options(const ReduceOptions& o) {
  LinearizeOptions l = o.snl;
  share_settings(o.train, l.finetune);
  l.finetune.kd_lambda = o.train.kd_lambda;  // as DeepReDuce's candidates
  l.sweep = o.sweep;
  l.plot_ext = o.plot_ext;
  l.flags = {"--snl-", "--snl-finetune-epochs", "--snl-epochs-per-point"};
  return l;
}

// A given teacher: finished, for --data's input and classes; the --model
// network itself, all-ReLU, where its weights are a start (snl, combined,
// --init-teacher). A KD-only teacher (deepreduce) may be any network.
void check_given_teacher(const ReduceOptions& o, const Plan& p) {
  train::check_run_for_data(o.teacher, "teacher", o.train.data);
  std::vector<std::string> starts;
  if (p.snl) starts.push_back("--method snl starts from its weights");
  if (p.combined) starts.push_back("--method combined starts from the DeepReDuce network it taught");
  if (o.init_from_teacher) starts.push_back("--init-teacher starts the candidates from its weights");
  if (starts.empty()) return;
  const std::string why = util::join(starts, "; ");
  const std::string spec = train::finished_result(o.teacher)->spec;
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
}

// Checks every setting and builds the plan; reads no data file.
Plan make_plan(const ReduceOptions& o) {
  // SNL's settings (and the budget list, plot format and --jobs they share)
  // whatever the methods: an option given is checked even where unused.
  LinearizeOptions l = snl_options(o);
  l.budgets = o.budgets;
  validate_settings(l);
  const arch::ModelSpec base = arch::parse_family_spec(o.train.model, "--model");
  o.train.validate();
  pi::select_protocols(pi::load_cost_model(), o.protocols);
  check_measure_pi(o);
  Plan p;
  p.deepreduce = uses(o, "deepreduce");
  p.snl = uses(o, "snl");
  p.combined = uses(o, "combined");
  check_output_dir(o.out, "reduce",
                   {"plan.json", "teacher/config.json", "criticality", "candidates", "snl/search", "combined/search"});
  p.base_spec = base.canonical();
  p.input = arch::parse_source(o.train.data).input;
  p.base_relus = arch::build_network(base, p.input).totals().relus;
  p.stages = arch::find_family(base.family).stages;
  p.teacher_dir = o.teacher.empty() ? path_join(o.out, "teacher") : o.teacher;
  if (!o.teacher.empty()) check_given_teacher(o, p);
  if (o.measure_pi > 0) check_private_runtime(arch::build_network(base, p.input), "--measure-pi");
  p.order = known_order(o);
  p.order_from = p.order.empty() ? "" : o.order.empty() ? "measured" : "given";
  p.candidates = search::deepreduce_candidates(p.base_spec, p.order.empty() ? p.stages : p.order, p.input);
  if (p.deepreduce) p.budgets = search::plan_budgets(p.candidates, o.budgets, o.per_budget);
  if (p.combined) p.combined_start = combined_start(p.candidates);
  check_snl_budgets(o, p);
  return p;
}

std::string plan_table(const std::vector<search::BudgetPlan>& plans) {
  report::Table t({{"budget", "budget", true}, {"step", "step"}, {"spec", "network"}, {"relus", "ReLUs", true}});
  for (const auto& p : plans)
    for (const auto& c : p.picks) t.add_row({p.budget, c.step_name, c.spec, c.relus});
  return t.render(report::Format::Table);
}

void print_plan(const ReduceOptions& o, const Plan& p) {
  std::cout << "Plan (" << util::join(o.methods, ", ") << ") for " << p.base_spec << " on " << o.train.data << " ("
            << p.input.shape.str() << ", " << p.input.classes << " classes), baseline "
            << report::thousands(p.base_relus) << " ReLUs\n";
  int step = 0;
  std::cout << "  " << ++step << ". teacher: " << p.teacher_dir
            << (o.teacher.empty() ? " (the all-ReLU baseline, trained here)" : " (given)") << "\n";
  const bool needs_order = p.deepreduce || p.combined;  // the methods that cull by the criticality order
  if (needs_order && !p.order.empty())
    std::cout << "  " << ++step << ". criticality order (" << p.order_from << "): " << util::join(p.order, " < ")
              << "\n";
  else if (needs_order)
    std::cout << "  " << ++step << ". criticality: " << p.stages.size() << " runs keeping one stage each, with KD"
              << (o.without_kd ? " and " + std::to_string(p.stages.size()) + " without" : "") << " -> "
              << path_join(o.out, "criticality") << "\n";
  const int criticality_step = step;
  if (p.deepreduce)
    std::cout << "  " << ++step << ". DeepReDuce candidates per budget, trained with KD:\n" << plan_table(p.budgets);
  else if (p.combined)
    std::cout << "  " << ++step << ". DeepReDuce's " << p.combined_start.step_name << " network trained with KD -> "
              << candidate_dir(o.out, p.combined_start.spec) << "\n";
  if (p.snl)
    std::cout << "  " << ++step << ". SNL from the teacher to every budget -> " << path_join(o.out, "snl") << "\n";
  if (p.combined)
    std::cout << "  " << ++step << ". SNL from DeepReDuce's " << p.combined_start.step_name << " network ("
              << report::thousands(p.combined_start.relus) << " ReLUs" << (p.order.empty() ? ", under the assumed order" : "")
              << ") to the budgets below it -> " << path_join(o.out, "combined") << "\n";
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

bool train_teacher(const ReduceOptions& o, const Plan& p, size_t& index) {
  if (!o.teacher.empty()) return true;
  return run_phase("teacher", {{"baseline " + p.base_spec, job_config(o.train, p.base_spec, p.teacher_dir, "", false)}},
                   o.sweep, index);
}

// Step 2: the measured criticality (rows and order), unless the order is
// known. False when this shard must stop.
bool measure_criticality(const ReduceOptions& o, const Plan& p, size_t& index, CriticalityResult& out) {
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
  const search::Shard& s = o.sweep.shard;
  co.sweep.shard.index = static_cast<int>((s.index + s.count - index % s.count) % s.count);
  out = run_criticality(co);
  index += p.stages.size() * (o.without_kd ? 2 : 1);
  return out.complete;
}

void write_plan_json(const std::string& out, const Plan& p) {
  nlohmann::json j = {{"model", p.base_spec}, {"order", p.order}, {"candidates", nlohmann::json::array()},
                      {"budgets", nlohmann::json::array()}};
  for (const auto& c : p.candidates)
    j["candidates"].push_back({{"step", static_cast<int>(c.step)}, {"name", c.step_name}, {"spec", c.spec}, {"relus", c.relus}});
  for (const auto& b : p.budgets) {
    nlohmann::json picks = nlohmann::json::array();
    for (const auto& c : b.picks) picks.push_back(c.spec);
    j["budgets"].push_back({{"budget", b.budget}, {"picks", picks}});
  }
  util::write_file_atomic(path_join(out, "plan.json"), j.dump(2) + "\n");
}

// Step 3: the plan under the final order, its networks trained with KD.
bool train_candidates(const ReduceOptions& o, Plan& p, const std::vector<std::string>& order, size_t& index) {
  if (!order.empty() && order != p.order) {
    p.order = order;
    p.candidates = search::deepreduce_candidates(p.base_spec, order, p.input);
    if (p.deepreduce) {
      p.budgets = search::plan_budgets(p.candidates, o.budgets, o.per_budget);
      std::cout << "\nCandidates under the measured order " << util::join(order, " < ") << ":\n"
                << plan_table(p.budgets);
    }
    if (p.combined) p.combined_start = combined_start(p.candidates);
  }
  write_plan_json(o.out, p);
  std::vector<search::Candidate> train = picked_candidates(p.budgets);
  if (p.combined && std::none_of(train.begin(), train.end(), [&](const auto& c) { return c.spec == p.combined_start.spec; }))
    train.push_back(p.combined_start);
  std::vector<Job> jobs;
  for (const auto& c : train)
    jobs.push_back({c.step_name + " (" + report::thousands(c.relus) + " ReLUs)",
                    job_config(o.train, c.spec, candidate_dir(o.out, c.spec), p.teacher_dir, o.init_from_teacher)});
  return run_phase("candidates", jobs, o.sweep, index);
}

// SNL (from the teacher, or `from` for the combined method) to the budgets
// below its starting network; false when this shard must stop.
bool run_snl(const ReduceOptions& o, const Plan& p, const std::string& name, const std::string& from,
             int64_t start_relus, std::vector<LinearizedPoint>& out) {
  LinearizeOptions l = snl_options(o);
  l.finetune.teacher = p.teacher_dir;
  l.out = path_join(o.out, name);
  l.from = from;
  l.budgets = budgets_below(o.budgets, start_relus);
  std::cerr << "[" << name << "] SNL from " << (from.empty() ? p.teacher_dir : from) << " -> " << l.out << "\n";
  out = run_linearize(l);
  return !out.empty();
}

}  // namespace

std::vector<std::string> parse_methods(const std::string& text) {
  if (text == "both") return {"deepreduce", "snl"};
  if (text == "all") return kMethods;
  std::vector<std::string> out;
  for (const auto& m : util::split(text, ',')) {
    if (std::find(kMethods.begin(), kMethods.end(), m) == kMethods.end())
      throw std::invalid_argument("--method '" + text + "': unknown method '" + m + "' (accepted: " +
                                  util::join(kMethods) + ", a comma list, both, all)");
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

std::string run_reduce(const ReduceOptions& o) {
  Plan p = make_plan(o);
  // Taken once, at the start: results.json and report.md record the same.
  const nlohmann::json started = train::provenance(o.train.device, o.train.threads);
  print_plan(o, p);
  if (o.dry_run) return "";
  check_measured_images(o);
  size_t index = 0;
  if (!train_teacher(o, p, index)) return "";
  CriticalityResult crit;
  if ((p.deepreduce || p.combined) && !measure_criticality(o, p, index, crit)) return "";
  if ((p.deepreduce || p.combined) && !train_candidates(o, p, crit.order, index)) return "";
  ReportInput in{o, p.base_spec, p.input, p.teacher_dir, p.order, crit.rows, p.budgets, {}, {}, "", started};
  if (p.snl && !run_snl(o, p, "snl", "", p.base_relus, in.snl)) return "";
  if (p.combined) {
    in.combined_start = p.combined_start.spec;
    if (!run_snl(o, p, "combined", candidate_dir(o.out, p.combined_start.spec), p.combined_start.relus, in.combined))
      return "";
  }
  return write_reduce_report(in);
}

}  // namespace dr::pipeline
