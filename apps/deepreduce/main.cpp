// deepreduce: ReLU reduction for fast private inference (DeepReDuce, ICML 2021).
#include <iostream>

#include "commands.h"
#include "onnx/reader.h"
#include "train/weights.h"

namespace {

// Every option that takes a value refuses an empty one, in every subcommand:
// CLI11 reads '' as 0 for a number (`--wd ''`: no weight decay) and a text
// option's '' as "not given" (`--order ''`: criticality measured).
void refuse_empty_values(CLI::App& app) {
  for (CLI::Option* opt : app.get_options())
    if (opt->get_type_size() != 0 && opt->nonpositional())
      opt->check(CLI::Validator(
          [opt](std::string& text) {
            return text.empty() ? "an empty value is not accepted (expected " + opt->get_type_name() + ")"
                                : std::string();
          },
          ""));
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) refuse_empty_values(*sub);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "deepreduce: measure where a network's ReLUs are, remove them by culling, thinning and\n"
      "reshaping, retrain with knowledge distillation, and report ReLU count vs accuracy\n"
      "with its private-inference cost."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  dr::onnx::install_network_reader();  // specs may name ONNX files
  dr::cli::add_models_command(app);
  dr::cli::add_count_command(app);
  dr::cli::add_train_command(app);
  dr::cli::add_search_commands(app);
  dr::cli::add_linearize_command(app);
  dr::cli::add_cost_command(app);
  dr::cli::add_pi_commands(app);
  dr::cli::add_export_command(app);
  dr::cli::add_provenance_command(app);
  refuse_empty_values(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : dr::cli::kExitUsage;
  } catch (const dr::arch::SpecError& e) {
    std::cerr << "deepreduce: error: " << e.what() << "\n";
    return dr::cli::kExitUsage;
  } catch (const dr::cli::UsageError& e) {
    std::cerr << "deepreduce: error: " << e.what() << "\n";
    return dr::cli::kExitUsage;
  } catch (const std::invalid_argument& e) {
    std::cerr << "deepreduce: error: " << e.what() << "\n";
    return dr::cli::kExitUsage;
  } catch (const std::exception& e) {
    // error_line: a LibTorch error without its C++ stack trace.
    std::cerr << "deepreduce: error: " << dr::train::error_line(e) << "\n";
    return dr::cli::kExitFailure;
  }
  return 0;
}
