#include "commands.h"

namespace dr::cli {

void InputChoice::add_options(CLI::App* cmd) {
  cmd->add_option("--dataset", dataset, input_preset_help());
  cmd->add_option("--input", shape, "Explicit input shape CxHxW (with --classes)");
  cmd->add_option("--classes", classes, "Number of classes (with --input)");
}

arch::InputSpec InputChoice::resolve(const std::string& family, std::string* described) const {
  if (!shape.empty() || classes > 0) {
    if (!dataset.empty()) throw UsageError("give --dataset or --input/--classes, not both");
    if (shape.empty() || classes < 1)
      throw UsageError("--input CxHxW and --classes N go together (e.g. --input 3x32x32 --classes 10)");
    arch::InputSpec in{arch::parse_shape(shape), classes};
    if (described) *described = in.shape.str() + ", " + std::to_string(classes) + " classes";
    return in;
  }
  const std::string ds = dataset.empty() ? arch::find_family(family).default_dataset : dataset;
  arch::InputSpec in = arch::dataset_input(ds);
  if (described)
    *described = ds + " (" + in.shape.str() + ", " + std::to_string(in.classes) + " classes)";
  return in;
}

}  // namespace dr::cli
