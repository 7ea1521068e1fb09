// `deepreduce linearize`: SNL's pixel-level linearisation to ReLU budgets.
#include <iostream>

#include "commands.h"
#include "pipeline/linearize.h"
#include "planner/candidates.h"
#include "train/distributed.h"

namespace dr::cli {

void add_linearize_command(CLI::App& app) {
  struct Opts {
    pipeline::LinearizeOptions o = pipeline::LinearizeOptions::defaults();
    std::string budgets, shard = "0/1";
    bool no_wait = false;
  };
  auto s = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "linearize",
      "SNL: learn which ReLU elements to keep (a mask per element, L1 penalty) down to each budget, then fine-tune "
      "each with KD");
  auto& o = s->o;
  cmd->add_option("--teacher", o.finetune.teacher, "Finished all-ReLU run: the KD teacher (and the start without --from)")
      ->required();
  cmd->add_option("--data", o.finetune.data, data_option_help())->required();
  cmd->add_option("--budget", s->budgets, "ReLU budgets, e.g. 50K,20K (each below the starting network's count)")
      ->required();
  o.out = "runs/linearize";
  cmd->add_option("--out", o.out, "Output directory")->capture_default_str();
  cmd->add_option("--from", o.from,
                  "Start the search from a DeepReDuce network instead of the teacher: a finished run, or a spec "
                  "(e.g. resnet18:alpha=0.25:cull=S1:thin; weights from the teacher where shapes match)");
  add_search_options(cmd, o.search, "--", "", "Mask search");
  cmd->add_option("--epochs-per-point", o.epochs_per_point,
                  "Training epochs per point in all: search epochs to its snapshot + the rest fine-tuning (at least 1); "
                  "0: --epochs of fine-tuning each")
      ->capture_default_str();
  cmd->add_option("--shard", s->shard, "Run only part i of N (i/N): shard 0 searches, all fine-tune")
      ->capture_default_str();
  cmd->add_flag("--no-wait", s->no_wait, "With --shard: stop instead of waiting for other shards");
  cmd->add_option("--jobs", o.sweep.jobs, "Fine-tunes at once, as processes with the cores split between them")
      ->capture_default_str();
  cmd->add_option("--plot-format", o.plot_ext, "Plots: png or svg")->capture_default_str();
  cmd->add_flag("--dry-run", o.dry_run, "Check the settings and print the plan only");
  add_training_options(cmd, o.finetune);  // --epochs, --lr, ...: the fine-tuning's
  cmd->callback([s] {
    s->o.budgets = planner::parse_budgets(s->budgets);
    s->o.sweep.shard = planner::parse_shard(s->shard);
    s->o.sweep.wait = !s->no_wait;
    run_on_ranks(train::Distributed::from_env(s->o.finetune.device), [&](train::Distributed* dist) {
      const auto points = pipeline::run_linearize(s->o, dist);
      if (!points.empty() && (!dist || dist->rank() == 0)) std::cout << "\nreport: " << s->o.out << "/report.md\n";
    });
  });
}

}  // namespace dr::cli
