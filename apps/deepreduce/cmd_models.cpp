// `deepreduce models`: the families, their stages and default input.
#include <iostream>

#include "commands.h"
#include "report/table.h"

namespace dr::cli {

void add_models_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the model families, their stages and default input");
  auto format = std::make_shared<std::string>("table");
  cmd->add_option("--format", *format, "Output format: table, md, csv, json")->capture_default_str();
  cmd->callback([format] {
    report::Table t({{"family", "family"},
                     {"stages", "stages"},
                     {"thin", "thin policies (default first)"},
                     {"blocks", "blocks"},
                     {"dataset", "default input"},
                     {"relus", "ReLUs", true},
                     {"description", "description"}});
    for (const auto& f : arch::families()) {
      std::string stages, thin, blocks;
      for (const auto& s : f.stages) stages += (stages.empty() ? "" : ",") + s;
      for (const auto& p : f.thin_policies) thin += (thin.empty() ? "" : ",") + p;
      for (int b : f.default_blocks) blocks += (blocks.empty() ? "" : ",") + std::to_string(b);
      const auto in = arch::dataset_input(f.default_dataset);
      t.add_row({f.name, stages, thin.empty() ? "-" : thin, blocks.empty() ? "-" : blocks,
                 f.default_dataset + " " + in.shape.str(),
                 arch::build_network(f.name, in).totals().relus, f.description});
    }
    std::cout << t.render(report::parse_format(*format));
    if (*format == "table")
      std::cout << "\nModel spec: family[:alpha=F][:rho=F][:blocks=N,..][:cull=Sa,..|:keep=Sa,..][:thin[=POLICY]]\n"
                   "e.g. resnet18:cull=S1,S4:thin:alpha=0.5\n";
  });
}

}  // namespace dr::cli
