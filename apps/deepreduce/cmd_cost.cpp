// `deepreduce cost SPEC...`: what a network's private inference would cost.
#include <iostream>

#include "commands.h"
#include "mpc/cost.h"
#include "mpc/program.h"
#include "pi/cost_table.h"
#include "report/format.h"

namespace dr::cli {

namespace {

// deepreduce's own runtime: exact online MB and rounds per image, or nulls
// for a network it cannot run.
std::vector<nlohmann::json> runtime_cells(const arch::Network& net) {
  try {
    const mpc::ExpectedCost c = mpc::expected_cost(net);  // counts only: any size `count` accepts
    return {static_cast<double>(c.online_bytes) / 1e6, c.rounds};
  } catch (const mpc::UnsupportedError&) {
    return {nullptr, nullptr};
  }
}

}  // namespace

void add_cost_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> specs;
    InputChoice input;
    std::string protocol = "all", format = "table", costs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("cost", "Estimated online PI traffic and ReLU time per network and protocol");
  cmd->add_option("SPEC", o->specs, "Model spec(s), or run directories (masked runs count their live ReLUs)")
      ->required();
  o->input.add_options(cmd);
  cmd->add_option("--protocol", o->protocol, protocol_option_help())->capture_default_str();
  cmd->add_option("--costs", o->costs, "Cost figures file (default: data/pi_protocols.json)");
  cmd->add_option("--format", o->format, report::format_option_help())->capture_default_str();
  cmd->callback([o] {
    const pi::CostModel model = pi::load_cost_model(o->costs);
    const auto protocols = pi::select_protocols(model, o->protocol);
    std::vector<arch::Network> nets;
    bool polys = false;
    for (const auto& spec : o->specs) {
      nets.push_back(o->input.network(spec));
      polys = polys || nets.back().totals().polys > 0;
    }
    std::vector<report::Column> cols = {{"spec", "spec"}, {"input", "input"}, {"relus", "ReLUs", true}};
    if (polys) cols.push_back({"polys", "poly elements", true});
    for (const report::Column& c : std::vector<report::Column>{{"linear_mb", "linear-input sharing MB", true},
                                                               {"pi_mb", "deepreduce pi MB", true},
                                                               {"pi_rounds", "pi rounds", true}})
      cols.push_back(c);
    for (const auto& c : pi::cost_columns(protocols)) cols.push_back(c);
    report::Table t(cols);
    for (const arch::Network& net : nets) {
      const pi::NetworkCost cost = pi::estimate(net, model, protocols);
      std::vector<nlohmann::json> row = {net.label(), net.input.str(), cost.relus};
      if (polys) row.push_back(cost.polys);
      row.push_back(cost.linear_share_bytes / 1e6);
      for (auto& c : runtime_cells(net)) row.push_back(c);
      for (auto& c : pi::cost_cells(cost)) row.push_back(c);
      t.add_row(row);
    }
    for (const char* k : {"linear_mb", "pi_mb"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
    pi::set_cost_display(t, protocols);
    const auto fmt = report::parse_format(o->format);
    std::cout << t.render(fmt);
    if (fmt == report::Format::Table) {
      std::cout << "\ndeepreduce pi: the online bytes and rounds of deepreduce's own runtime (`deepreduce pi`, "
                   "dealer-assisted), exact by its formula\n(docs/private_inference.md; `-` where it cannot run the "
                   "network). Estimates per protocol: MB = online traffic of the ReLUs plus the\nsharing of every "
                   "conv/FC input (" << model.ring_bits << "-bit ring)"
                << (polys ? " plus a Beaver multiplication per polynomial element (4 ring elements)" : "")
                << ", s = the ReLUs' online time, figures from " << model.path << ":\n";
      for (const auto* p : protocols)
        std::cout << "  " << p->id << ": " << p->name << ", " << p->bits_per_relu << " bits/ReLU"
                  << (p->us_per_relu ? ", " + report::fixed(*p->us_per_relu, 1) + " us/ReLU" : std::string())
                  << (p->rounds ? ", " + std::to_string(*p->rounds) + " rounds" : std::string()) << " (" << p->source
                  << ")\n";
    }
  });
}

}  // namespace dr::cli
