// Help texts generated from the registries, so a new dataset, family or
// protocol shows up in every --help without editing it here.
#include "arch/datasets.h"
#include "commands.h"
#include "pi/cost.h"
#include "util/strings.h"

namespace dr::cli {

std::string data_option_help() {
  std::vector<std::string> names;
  for (const auto& d : arch::datasets())
    names.push_back(d.loader == "synthetic" ? d.name + "[:CxHxW[:CLASSES[:N]]]" : d.name);
  return "Dataset NAME[:PATH]: " + util::join(names) + " (`deepreduce models` lists their files and default paths)";
}

std::string input_preset_help() {
  return "Input preset: " + util::join(arch::dataset_names()) + " (default: the family's own, see `deepreduce models`)";
}

std::string protocol_option_help() {
  try {
    std::vector<std::string> ids;
    for (const auto& p : pi::load_cost_model().protocols) ids.push_back(p.id);
    return "PI protocols: " + util::join(ids) + ", a comma list, or all";
  } catch (const std::exception&) {
    // The cost file is unreadable: the command will say why when it runs.
    return "PI protocols of " + pi::default_cost_model_path() + ", a comma list, or all";
  }
}

}  // namespace dr::cli
