// `deepreduce train`, `resume`, `eval`: train one network, continue a killed
// run, evaluate a finished one.
#include <functional>
#include <iostream>
#include <memory>

#include "commands.h"
#include "onnx/reader.h"
#include "pipeline/onnx_model.h"
#include "report/format.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace dr::cli {

namespace {

void print_result(const train::RunResult& r) {
  std::cout << "run " << r.dir << ": " << r.spec << " on " << r.data << "\n"
            << "  test accuracy " << report::fixed(r.test_acc, 4) << ", " << report::thousands(r.relus)
            << " ReLUs, " << report::thousands(r.params) << " params, " << r.epochs << " epochs"
            << (r.kd ? " with KD" : "") << ", " << report::fixed(r.seconds, 1) << " s\n";
}

// Runs one (possibly data-parallel) training: only rank 0 prints the result.
void run_training(std::unique_ptr<train::Distributed> dist,
                  const std::function<train::RunResult(train::Distributed*)>& body) {
  run_on_ranks(std::move(dist), [&](train::Distributed* d) {
    const train::RunResult r = body(d);
    if (!d || d->rank() == 0) print_result(r);
  });
}

}  // namespace

void run_on_ranks(std::unique_ptr<train::Distributed> dist, const std::function<void(train::Distributed*)>& body) {
  if (!dist) return body(nullptr);
  // Communication errors ("data-parallel training: rank N ...") name it already.
  auto named = [&](const std::exception& e) {
    const std::string m = e.what();
    return dist->rank() == 0 || m.rfind("data-parallel training:", 0) == 0
               ? m
               : "rank " + std::to_string(dist->rank()) + ": " + m;
  };
  try {
    body(dist.get());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(named(e));
  } catch (const std::exception& e) {
    throw std::runtime_error(named(e));
  }
}

void add_train_command(CLI::App& app) {
  auto c = std::make_shared<train::TrainConfig>();
  auto* cmd = app.add_subcommand("train", "Train a network (alone or distilled from a teacher run)");
  cmd->add_option("--model", c->model, "Model spec, e.g. resnet18:alpha=0.25")->required();
  cmd->add_option("--data", c->data, data_option_help())->required();
  cmd->add_option("--out", c->out, "Run directory to create")->required();
  cmd->add_option("--teacher", c->teacher, "Finished run to distil from (knowledge distillation)");
  cmd->add_option("--init", c->init, "Start from the teacher's weights where shapes allow: teacher");
  cmd->add_option("--init-weights", c->init_weights,
                  "Start from these weights: a weights.pt, or the initializers of an ONNX model (model.onnx, e.g. "
                  "the --model's own); every parameter and buffer must match the network");
  add_training_options(cmd, *c);
  cmd->callback([c] {
    run_training(train::Distributed::from_env(c->device),
                 [c](train::Distributed* d) { return train::train(*c, d); });
  });

  auto dir = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  auto* res = app.add_subcommand("resume", "Continue a killed run from its last finished epoch");
  res->add_option("DIR", *dir, "Run directory")->required();
  res->add_option("--threads", *threads, "Compute threads (0 = as the run was configured)");
  res->callback([dir, threads] {
    run_training(train::Distributed::from_env(train::read_config(*dir).device),
                 [dir, threads](train::Distributed* d) { return train::resume(*dir, d, *threads); });
  });

  auto data = std::make_shared<std::string>();
  auto device = std::make_shared<std::string>("auto");
  auto norm = std::make_shared<std::pair<std::vector<double>, std::vector<double>>>();
  auto* ev = app.add_subcommand("eval", "Test accuracy and ReLU count of a finished run or an ONNX model");
  ev->add_option("DIR", *dir, "Run directory, or an ONNX model (model.onnx, with --data)")->required();
  ev->add_option("--data", *data, "Evaluate on this dataset instead of the run's own (an ONNX model: required)");
  ev->add_option("--mean", norm->first,
                 "An ONNX model's input normalisation, per channel in [0,1] units (e.g. 0.4914,0.4822,0.4465; "
                 "default: the data's own mean)")
      ->delimiter(',');
  ev->add_option("--std", norm->second, "Likewise its standard deviations (default: the data's own)")->delimiter(',');
  ev->add_option("--threads", *threads, "Compute threads (0 = every core)");
  ev->add_option("--device", *device, "cpu, cuda or auto")->capture_default_str();
  ev->callback([dir, data, threads, device, norm] {
    const bool onnx = onnx::is_onnx_path(*dir);
    if (!onnx && !(norm->first.empty() && norm->second.empty()))
      throw UsageError("--mean and --std are an ONNX model's; a run normalises as it was trained");
    const auto r = onnx ? pipeline::evaluate_onnx({*dir, *data, norm->first, norm->second, *threads, *device})
                        : train::evaluate(*dir, *data, *threads, *device);
    std::cout << r.spec << " on " << r.data << ": test accuracy " << report::fixed(r.acc, 4) << " ("
              << r.images << " images, loss " << report::fixed(r.loss, 4) << "), "
              << report::thousands(r.relus) << " ReLUs"
              << (r.polys > 0 ? ", " + report::thousands(r.polys) + " polynomial elements" : std::string()) << "\n";
  });
}

}  // namespace dr::cli
