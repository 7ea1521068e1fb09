// `deepreduce criticality` and `deepreduce reduce`: the DeepReDuce pipeline.
#include <climits>
#include <iostream>

#include "commands.h"
#include "pi/private_cost.h"
#include "pipeline/criticality.h"
#include "pipeline/reduce.h"
#include "planner/candidates.h"

namespace dr::cli {

namespace {

void add_common(CLI::App* cmd, train::TrainConfig& c, std::string& shard, bool& no_wait, bool& no_kd_runs,
                pipeline::Sweep& sweep) {
  cmd->add_option("--model", c.model, "Family spec, e.g. resnet18 or resnet18:alpha=0.25 (no cull/keep/thin)")
      ->required();
  cmd->add_option("--data", c.data, data_option_help())->required();
  cmd->add_flag("--no-kd", no_kd_runs, "Skip the criticality runs without KD (only the KD column)");
  cmd->add_option("--shard", shard, "Run only part i of N of the job list (i/N, e.g. 0/4)")->capture_default_str();
  cmd->add_flag("--no-wait", no_wait, "With --shard: stop instead of waiting for other shards' runs");
  cmd->add_option("--jobs", sweep.jobs,
                  "Trainings at once, as processes with the cores split between them (each logs to its "
                  "run directory's train.log)")
      ->capture_default_str();
  add_training_options(cmd, c);
}

void add_criticality_command(CLI::App& app) {
  struct Opts {
    pipeline::CriticalityOptions o;
    std::string shard = "0/1";
    bool no_wait = false, no_kd = false;
  };
  auto s = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "criticality", "Train, per stage, the network keeping only that stage's ReLUs, and rank the stages (C_k)");
  add_common(cmd, s->o.train, s->shard, s->no_wait, s->no_kd, s->o.sweep);
  cmd->add_option("--teacher", s->o.train.teacher, "Finished all-ReLU baseline run to distil from")->required();
  s->o.out = "runs/criticality";
  cmd->add_option("--out", s->o.out, "Output directory")->capture_default_str();
  cmd->callback([s] {
    s->o.sweep.shard = planner::parse_shard(s->shard);
    s->o.sweep.wait = !s->no_wait;
    s->o.without_kd = !s->no_kd;
    const auto r = pipeline::run_criticality(s->o);
    if (r.complete) std::cout << "wrote " << s->o.out << "/criticality.json and criticality.md\n";
  });
}

// One of --budget (ReLUs), --budget-ms with --link, --budget-mb, --budget-key-mb.
void parse_reduce_budgets(const std::string& relus, const std::string& ms, const std::string& mb,
                          const std::string& key_mb, const std::string& link, pipeline::ReduceOptions& o) {
  const int given = !relus.empty() + !ms.empty() + !mb.empty() + !key_mb.empty();
  if (given != 1)
    throw std::invalid_argument(std::string(given == 0 ? "reduce needs budgets" : "give one kind of budget") +
                                ": --budget (ReLUs, e.g. 50K,20K), --budget-ms with --link lan|wan (modelled "
                                "latency per image, e.g. --budget-ms 300,100 --link wan), --budget-mb (online MB "
                                "per image, e.g. 5,1.5) or --budget-key-mb (key MB per party and image)");
  if (!link.empty() && ms.empty()) throw std::invalid_argument("--link goes with --budget-ms (the link its latency is modelled on)");
  if (!ms.empty() && link.empty())
    throw std::invalid_argument("--budget-ms needs --link lan or --link wan (the link its latency is modelled on)");
  if (!relus.empty()) o.budgets = planner::parse_budgets(relus);
  if (!ms.empty()) o.cost_budgets = pi::parse_cost_budgets(ms, pi::CostBudget::Unit::Ms, &pi::find_link(link), "--budget-ms");
  if (!mb.empty()) o.cost_budgets = pi::parse_cost_budgets(mb, pi::CostBudget::Unit::Mb, nullptr, "--budget-mb");
  if (!key_mb.empty())
    o.cost_budgets = pi::parse_cost_budgets(key_mb, pi::CostBudget::Unit::KeyMb, nullptr, "--budget-key-mb");
}

void add_reduce_command(CLI::App& app) {
  struct Opts {
    pipeline::ReduceOptions o;
    std::string budgets, budget_ms, budget_mb, budget_key_mb, link, shard = "0/1", methods = "deepreduce";
    bool no_wait = false, no_kd = false, init_teacher = false;
  };
  auto s = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "reduce",
      "The DeepReDuce pipeline: teacher, criticality, cull/thin/reshape to ReLU budgets, KD training, frontier, report");
  add_common(cmd, s->o.train, s->shard, s->no_wait, s->no_kd, s->o.sweep);
  cmd->add_option("--budget", s->budgets, "ReLU budgets, e.g. 50K,20K,1.5M (K = 1,000)");
  cmd->add_option("--budget-ms", s->budget_ms,
                  "Budgets in modelled private-inference latency per image, ms on --link (e.g. 300,100): each "
                  "method plans the networks or ReLU budgets they allow (instead of --budget)");
  cmd->add_option("--link", s->link, "With --budget-ms: lan (1 Gb/s, 0.5 ms RTT) or wan (100 Mb/s, 40 ms RTT)");
  cmd->add_option("--budget-mb", s->budget_mb,
                  "Budgets in online megabytes per image of deepreduce's private runtime (e.g. 5,1.5; instead of "
                  "--budget)");
  cmd->add_option("--budget-key-mb", s->budget_key_mb,
                  "Budgets in megabytes of key per party and image that the dealer makes (2,080 bytes a ReLU, 40 a "
                  "polynomial element; instead of --budget)");
  cmd->add_option("--teacher", s->o.teacher,
                  "Finished all-ReLU baseline run (default: train it in OUT/teacher); the --model network itself "
                  "for snl, combined and --init-teacher, which start from its weights");
  s->o.out = "runs/reduce";
  cmd->add_option("--out", s->o.out, "Output directory")->capture_default_str();
  cmd->add_option("--per-budget", s->o.per_budget, "Candidates trained per budget (the largest that fit)")
      ->check(integer_in(1, INT_MAX))
      ->capture_default_str();
  cmd->add_option("--order", s->o.order, "Criticality order, least critical first (e.g. S1,S4,S2,S3): skip criticality");
  cmd->add_flag("--init-teacher", s->init_teacher,
                "Start each candidate from the teacher's weights (culling and thinning keep every shape)");
  cmd->add_option("--protocol", s->o.protocols, protocol_option_help() + " (the report's PI cost columns)")
      ->capture_default_str();
  cmd->add_option("--plot-format", s->o.plot_ext, "Frontier plot: png or svg")->capture_default_str();
  cmd->add_flag("--dry-run", s->o.dry_run, "Print the plan only");
  cmd->add_option("--measure-pi", s->o.measure_pi,
                  "Run every frontier network privately (deepreduce pi run) on this many test images: measured "
                  "bytes and latency columns and a latency frontier plot (0: estimates only; at most " +
                      std::to_string(pipeline::kMaxMeasurePi) + ", and the test images --data and --limit give)")
      ->check(integer_in(0, pipeline::kMaxMeasurePi))
      ->capture_default_str();
  cmd->add_option("--measure-pi-gate", s->o.measure_pi_gate,
                  "The ReLU gate of the private runtime: --measure-pi runs with it, and budgets in ms or MB and the "
                  "report's runtime columns price it (pi run --relu-gate: " + relu_gate_option_help() +
                      "; or dcf:auto / dpf:auto, measured at the width the data gives, priced as dcf)")
      ->capture_default_str();
  cmd->add_option("--method", s->methods,
                  "Methods on the frontier: deepreduce (cull, thin, reshape), snl (pixel masks learned from the "
                  "teacher), combined (pixel masks learned from DeepReDuce's cull-1 + thin network), poly (removed "
                  "ReLUs become trained per-channel quadratics, AutoReP-style), a comma list, both (deepreduce,snl) "
                  "or all")
      ->capture_default_str();
  auto& l = s->o.snl;
  cmd->add_option("--snl-epochs-per-point", l.epochs_per_point,
                  "SNL points: training epochs per point in all (search to its snapshot + fine-tuning); 0: "
                  "--snl-finetune-epochs each")
      ->capture_default_str();
  cmd->add_option("--snl-finetune-epochs", l.finetune.epochs, "SNL points: fine-tuning epochs (when not per point)")
      ->capture_default_str();
  add_search_options(cmd, l.search, "--snl-", "SNL: ", "SNL mask search", true);
  cmd->callback([s] {
    s->o.methods = pipeline::parse_methods(s->methods);
    parse_reduce_budgets(s->budgets, s->budget_ms, s->budget_mb, s->budget_key_mb, s->link, s->o);
    s->o.sweep.shard = planner::parse_shard(s->shard);
    s->o.sweep.wait = !s->no_wait;
    s->o.without_kd = !s->no_kd;
    s->o.init_from_teacher = s->init_teacher;
    const std::string report = pipeline::run_reduce(s->o);
    if (!report.empty())
      std::cout << "\nreport: " << report << "\nplot:   " << s->o.out << "/frontier." << s->o.plot_ext << "\n";
  });
}

}  // namespace

void add_search_commands(CLI::App& app) {
  add_criticality_command(app);
  add_reduce_command(app);
}

}  // namespace dr::cli
