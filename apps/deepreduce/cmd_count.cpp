// `deepreduce count SPEC...`: where a network's ReLUs, FLOPs and params are.
#include <iostream>
#include <nlohmann/json.hpp>

#include "arch/describe.h"
#include "commands.h"
#include "report/format.h"
#include "report/network_tables.h"
#include "report/table.h"

namespace dr::cli {

namespace {

struct CountOptions {
  std::vector<std::string> specs;
  InputChoice input;
  bool layers = false;
  std::string format = "table";
  std::string plot;
};

void run_count(const CountOptions& o) {
  std::vector<arch::Network> nets;
  std::vector<std::string> described;
  for (const auto& spec : o.specs) {
    std::string d;
    nets.push_back(o.input.network(spec, &d));
    described.push_back(d);
  }
  const auto fmt = report::parse_format(o.format);
  if (!o.plot.empty()) {
    if (nets.size() != 1) throw UsageError("--plot draws one network; give a single SPEC");
    report::plot_figure7(nets[0], o.plot);
    std::cerr << "wrote " << o.plot << "\n";
  }
  if (fmt == report::Format::Json) {
    nlohmann::json j;
    if (nets.size() == 1) {
      j = arch::network_json(nets[0], o.layers);
    } else {
      j = nlohmann::json::array();
      for (const auto& n : nets) j.push_back(arch::network_json(n, o.layers));
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (nets.size() == 1) {
    const auto& net = nets[0];
    if (fmt == report::Format::Table)
      std::cout << net.label() << " on " << described[0] << ": " << report::thousands(net.totals().relus)
                << " ReLUs"
                << (net.totals().polys > 0 ? ", " + report::thousands(net.totals().polys) +
                                                 " polynomial elements (not ReLUs; a secure multiplication each)"
                                           : std::string())
                << "\n\n";
    std::cout << report::stage_table(net).render(fmt);
    if (o.layers) std::cout << "\n" << report::layer_table(net).render(fmt);
    return;
  }
  // A comparison table: one row per spec, with per-stage ReLUs.
  std::vector<report::Column> cols = {{"spec", "spec"}, {"input", "input"}, {"relus", "ReLUs", true}};
  const auto& stages = nets[0].stages;
  bool same_stages = true;
  for (const auto& n : nets) same_stages = same_stages && n.stages == stages;
  if (same_stages)
    for (const auto& s : stages) cols.push_back({s, s + " ReLUs", true});
  bool polys = false;
  for (const auto& n : nets) polys = polys || n.totals().polys > 0;
  if (polys) cols.push_back({"polys", "poly elements", true});
  cols.push_back({"flops", "FLOPs (MACs)", true});
  cols.push_back({"params", "params", true});
  report::Table t(cols);
  for (const auto& n : nets) {
    std::vector<nlohmann::json> row = {n.label(), n.input.str(), n.totals().relus};
    if (same_stages)
      for (const auto& s : n.stage_totals())
        if (std::find(stages.begin(), stages.end(), s.name) != stages.end()) row.push_back(s.totals.relus);
    if (polys) row.push_back(n.totals().polys);
    row.push_back(n.totals().flops);
    row.push_back(n.totals().params);
    t.add_row(row);
  }
  std::cout << t.render(fmt);
}

}  // namespace

void add_count_command(CLI::App& app) {
  auto o = std::make_shared<CountOptions>();
  auto* cmd = app.add_subcommand(
      "count", "ReLUs, FLOPs (multiply-accumulates) and params of networks, per stage and layer");
  cmd->add_option("SPEC", o->specs, "Model spec(s), e.g. resnet18:cull=S1:thin:alpha=0.5, or run directories")
      ->required();
  o->input.add_options(cmd);
  cmd->add_flag("--layers", o->layers, "Also list every layer");
  cmd->add_option("--format", o->format, report::format_option_help())->capture_default_str();
  cmd->add_option("--plot", o->plot,
                  "Draw the layer-wise % of params, FLOPs and ReLUs (appendix Figure 7) to FILE (.png or .svg)");
  cmd->callback([o] { run_count(*o); });
}

}  // namespace dr::cli
