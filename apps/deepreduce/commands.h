#pragma once
// The subcommands of the deepreduce CLI: each file cmd_<name>.cpp adds one.
#include <CLI/CLI.hpp>

#include "arch/spec.h"
#include "mpc/program.h"
#include <functional>
#include <memory>

#include "train/config.h"
#include "train/snl.h"

namespace dr::train {
class Distributed;
}

namespace dr::cli {

// Exit codes: 0 success, 1 a failure while running (data, training, I/O),
// 2 a usage error (bad option, model spec, budget, dataset name).
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// A usage error found after option parsing (a bad spec, an impossible budget).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void add_models_command(CLI::App& app);
void add_count_command(CLI::App& app);
void add_train_command(CLI::App& app);  // train, resume, eval
void add_cost_command(CLI::App& app);
void add_search_commands(CLI::App& app);  // criticality, reduce
void add_pi_commands(CLI::App& app);      // pi deal, serve, client, run
void add_linearize_command(CLI::App& app);
void add_provenance_command(CLI::App& app);  // for scripts: the provenance record
void add_export_command(CLI::App& app);      // a run as an ONNX model

// Help texts generated from the dataset and protocol registries (help.cpp).
std::string data_option_help();
std::string input_preset_help();
std::string protocol_option_help();
// --relu-gate of cost, pi deal and pi run: its help, and its value read
// (UsageError naming the value and what is accepted).
std::string relu_gate_option_help();
mpc::ReluGateChoice parse_relu_gate_option(const std::string& text);

// A check for an integer option, made on the text typed: a whole decimal
// number in lo..hi, else "must be in lo..hi (got 'TEXT')" (exit 2).
CLI::Validator integer_in(int64_t lo, int64_t hi);

// Runs `body` as this process's rank of a data-parallel job (dist from
// train::Distributed::from_env) or alone (null): an error of a rank other
// than 0 names that rank.
void run_on_ranks(std::unique_ptr<train::Distributed> dist, const std::function<void(train::Distributed*)>& body);

// --epochs, --batch, --lr, ... shared by train, criticality and reduce.
void add_training_options(CLI::App* cmd, train::TrainConfig& c);
// The SNL mask search's own settings (train::search_settings()), each as
// `prefix` + its flag (linearize: --lasso; reduce: --snl-lasso) under
// `group`; with `per_method` (reduce) not those its --method sets (--replace).
void add_search_options(CLI::App* cmd, train::SnlOptions& o, const std::string& prefix, const std::string& help_prefix,
                        const std::string& group, bool per_method = false);

// The input a network is built for: --dataset, or --input with --classes, or
// the family's default dataset. Throws UsageError / arch::SpecError.
struct InputChoice {
  std::string dataset;  // "" when --input was given
  std::string shape;    // CxHxW
  int64_t classes = 0;
  void add_options(CLI::App* cmd);
  arch::InputSpec resolve(const std::string& family, std::string* described = nullptr) const;
  // A model spec on the chosen input, or a finished run directory's network
  // (on its own input, with its pixel masks when it has them).
  arch::Network network(const std::string& spec_or_run, std::string* described = nullptr) const;
};

}  // namespace dr::cli
