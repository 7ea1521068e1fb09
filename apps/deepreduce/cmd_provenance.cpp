// `deepreduce provenance`: the provenance record every result carries (version,
// commit, LibTorch, device, threads, CPU, cores, host, time), for scripts that
// write results of their own (bench/*.sh).
#include <iostream>

#include "commands.h"
#include "train/provenance.h"

namespace dr::cli {

void add_provenance_command(CLI::App& app) {
  struct Options {
    std::string device = "cpu", format = "line";
    int threads = 0;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "provenance", "Print where a result comes from: deepreduce version and commit, LibTorch, device, threads, CPU, "
                    "cores, host, time (what config.json and result.json record)");
  cmd->add_option("--threads", o->threads, "Compute threads the result used (0 = every core)")
      ->check(integer_in(0, INT32_MAX))
      ->capture_default_str();
  cmd->add_option("--device", o->device, "Device the result used: cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--format", o->format, "line (one line for a report) or json (the record)")
      ->check(CLI::IsMember({"line", "json"}))
      ->capture_default_str();
  cmd->callback([o] {
    train::check_threads("--threads", o->threads);
    const nlohmann::json p = train::provenance(o->device, o->threads);
    std::cout << (o->format == "json" ? p.dump() : train::provenance_line(p)) << "\n";
  });
}

}  // namespace dr::cli
