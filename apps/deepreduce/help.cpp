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

std::string relu_gate_option_help() {
  return "How the private runtime compares (ReLUs, max pooling): dcf (one round, 2,080 key bytes per ReLU and "
         "party), dcf:N (one round on the low N bits, 32 N + 32 bytes) or dpf:N (two rounds on the low N bits, "
         "16 (N - 6) + 33 bytes); the N-bit gates are exact for inputs within +-2^(N-1), N in 8..64 (pi run "
         "reports the inputs outside, and the largest one)";
}

mpc::ReluGateChoice parse_relu_gate_option(const std::string& text) {
  try {
    return mpc::parse_relu_gate(text);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--relu-gate: ") + e.what());
  }
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
