// deepreduce: ReLU reduction for fast private inference (DeepReDuce, ICML 2021).
#include <iostream>

#include "commands.h"
#include "train/weights.h"

int main(int argc, char** argv) {
  CLI::App app{
      "deepreduce: measure where a network's ReLUs are, remove them by culling, thinning and\n"
      "reshaping, retrain with knowledge distillation, and report ReLU count vs accuracy\n"
      "with its private-inference cost."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  dr::cli::add_models_command(app);
  dr::cli::add_count_command(app);
  dr::cli::add_train_command(app);
  dr::cli::add_search_commands(app);
  dr::cli::add_linearize_command(app);
  dr::cli::add_cost_command(app);
  dr::cli::add_pi_commands(app);
  dr::cli::add_provenance_command(app);
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
