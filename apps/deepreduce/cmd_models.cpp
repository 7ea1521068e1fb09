// `deepreduce models`: the families and datasets of the registries.
#include <iostream>

#include "commands.h"
#include "report/format.h"
#include "report/table.h"
#include "util/strings.h"

namespace dr::cli {

namespace {

report::Table family_table() {
  report::Table t({{"family", "family"},
                   {"stages", "stages"},
                   {"thin", "thin policies (default first)"},
                   {"blocks", "blocks"},
                   {"dataset", "default input"},
                   {"relus", "ReLUs", true},
                   {"description", "description"}});
  for (const auto& f : arch::families()) {
    std::vector<std::string> blocks;
    for (int b : f.default_blocks) blocks.push_back(std::to_string(b));
    const auto in = arch::dataset_input(f.default_dataset);
    t.add_row({f.name, util::join(f.stages, ","), f.thin_policies.empty() ? "-" : util::join(f.policy_names(), ","),
               blocks.empty() ? "-" : util::join(blocks, ","), f.default_dataset + " " + in.shape.str(),
               arch::build_network(f.name, in).totals().relus, f.description});
  }
  return t;
}

report::Table dataset_table() {
  report::Table t({{"dataset", "dataset"},
                   {"aliases", "aliases"},
                   {"input", "input"},
                   {"classes", "classes", true},
                   {"path", "default path"},
                   {"files", "files"}});
  for (const auto& d : arch::datasets())
    t.add_row({d.name, d.aliases.empty() ? "-" : util::join(d.aliases, ","), d.input.shape.str(), d.input.classes,
               d.default_path.empty() ? "-" : d.default_path, d.files});
  return t;
}

}  // namespace

void add_models_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List the model families (stages, thinning, default input) and datasets");
  auto format = std::make_shared<std::string>("table");
  cmd->add_option("--format", *format, report::format_option_help())->capture_default_str();
  cmd->callback([format] {
    const auto fmt = report::parse_format(*format);
    if (fmt == report::Format::Json) {
      std::cout << nlohmann::json{{"families", family_table().to_json()}, {"datasets", dataset_table().to_json()}}.dump(2)
                << "\n";
      return;
    }
    std::cout << family_table().render(fmt);
    if (fmt == report::Format::Table)
      std::cout << "\nModel spec: family[:alpha=F][:rho=F][:blocks=N,..][:cull=Sa,..|:keep=Sa,..][:thin[=POLICY]]\n"
                   "e.g. resnet18:cull=S1,S4:thin:alpha=0.5\n\n";
    else
      std::cout << "\n";
    std::cout << dataset_table().render(fmt);
    if (fmt == report::Format::Table) std::cout << "\n--data NAME[:PATH]: the dataset in PATH (default: its default path)\n";
  });
}

}  // namespace dr::cli
