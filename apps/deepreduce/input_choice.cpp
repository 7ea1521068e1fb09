#include "commands.h"
#include "onnx/reader.h"
#include "train/trainer.h"
#include "util/fs.h"

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

arch::Network InputChoice::network(const std::string& spec_or_run, std::string* described) const {
  // An ONNX model, reduced or not (model.onnx:cull=S1): its graph gives the
  // input and the classes.
  if (onnx::is_onnx_path(spec_or_run.substr(0, spec_or_run.find(':')))) {
    if (!dataset.empty() || !shape.empty())
      throw UsageError("an ONNX model (" + spec_or_run + ") has its own input: give no --dataset or --input with it");
    const arch::ModelSpec ms = arch::parse_spec(spec_or_run);
    const arch::Family& fam = arch::find_family(ms.family);  // the file, read once
    const arch::Network& file = *arch::file_network(fam);
    if (described)
      *described = fam.description + " (" + file.input.str() + ", " + std::to_string(file.classes) + " classes)";
    return arch::build_network(ms, {file.input, file.classes});
  }
  // A run directory, finished or not (an unfinished one is named as such,
  // not parsed as a model spec).
  if (util::file_exists(util::path_join(spec_or_run, "result.json")) ||
      util::file_exists(util::path_join(spec_or_run, "config.json"))) {
    if (!dataset.empty() || !shape.empty()) throw UsageError("a run directory (" + spec_or_run + ") has its own input: "
                                                             "give no --dataset or --input with it");
    arch::Network net;
    // Its files agree and its weights.pt and masks.pt match their SHA-256.
    if (!train::verified_result(spec_or_run, &net)) train::require_finished(spec_or_run);
    if (described)
      *described = "run " + spec_or_run + " (" + net.input.str() + ", " + std::to_string(net.classes) + " classes" +
                   (train::read_config(spec_or_run).masked ? ", pixel masks" : "") + ")";
    return net;
  }
  const arch::ModelSpec ms = arch::parse_spec(spec_or_run);
  return arch::build_network(ms, resolve(ms.family, described));
}

}  // namespace dr::cli
