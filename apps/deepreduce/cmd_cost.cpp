// `deepreduce cost SPEC...`: what a network's private inference would cost.
#include <iostream>

#include "commands.h"
#include "mpc/cost.h"
#include "mpc/program.h"
#include "pi/cost_table.h"
#include "pi/private_cost.h"
#include "report/format.h"

namespace dr::cli {

namespace {

// deepreduce's own runtime with the ReLU gate `gate`: exact online MB,
// rounds and key MB (the larger party's) per image, and the modelled LAN and
// WAN latency; nulls for a network it cannot run.
std::vector<nlohmann::json> runtime_cells(const arch::Network& net, mpc::ReluGateChoice gate, int64_t batch,
                                          const pi::TimeModel& time) {
  try {
    const pi::PrivateCost c = pi::private_cost(net, time, gate);  // counts only: any size `count` accepts
    return {static_cast<double>(c.online_bytes) / 1e6, c.rounds, static_cast<double>(c.key_bytes) / 1e6,
            c.seconds(pi::kLan, batch), c.seconds(pi::kWan, batch)};
  } catch (const mpc::UnsupportedError&) {
    return {nullptr, nullptr, nullptr, nullptr, nullptr};
  }
}

}  // namespace

void add_cost_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> specs;
    InputChoice input;
    std::string protocol = "all", format = "table", costs, relu_gate = "dcf";
    int64_t batch = 1;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("cost", "Estimated online PI traffic and ReLU time per network and protocol");
  cmd->add_option("SPEC", o->specs, "Model spec(s), or run directories (masked runs count their live ReLUs)")
      ->required();
  o->input.add_options(cmd);
  cmd->add_option("--protocol", o->protocol, protocol_option_help())->capture_default_str();
  cmd->add_option("--costs", o->costs, "Cost figures file (default: data/pi_protocols.json)");
  cmd->add_option("--relu-gate", o->relu_gate, relu_gate_option_help())->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "pi LAN/WAN s per image with images run in batches of this many (pi run --batch): a batch's "
                  "rounds shared by its images")
      ->check(integer_in(1, int64_t(mpc::kMaxBatch)))
      ->capture_default_str();
  cmd->add_option("--format", o->format, report::format_option_help())->capture_default_str();
  cmd->callback([o] {
    const mpc::ReluGateChoice gate = parse_relu_gate_option(o->relu_gate);
    const pi::TimeModel time = pi::load_time_model();
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
                                                               {"pi_rounds", "pi rounds", true},
                                                               {"pi_key_mb", "pi key MB", true},
                                                               {"pi_lan_s", "pi LAN s", true},
                                                               {"pi_wan_s", "pi WAN s", true}})
      cols.push_back(c);
    for (const auto& c : pi::cost_columns(protocols)) cols.push_back(c);
    report::Table t(cols);
    for (const arch::Network& net : nets) {
      const pi::NetworkCost cost = pi::estimate(net, model, protocols);
      std::vector<nlohmann::json> row = {net.label(), net.input.str(), cost.relus};
      if (polys) row.push_back(cost.polys);
      row.push_back(cost.linear_share_bytes / 1e6);
      for (auto& c : runtime_cells(net, gate, o->batch, time)) row.push_back(c);
      for (auto& c : pi::cost_cells(cost)) row.push_back(c);
      t.add_row(row);
    }
    for (const char* k : {"linear_mb", "pi_mb", "pi_key_mb"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
    for (const char* k : {"pi_lan_s", "pi_wan_s"})
      t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 3); });
    pi::set_cost_display(t, protocols);
    const auto fmt = report::parse_format(o->format);
    std::cout << t.render(fmt);
    if (fmt == report::Format::Table) {
      std::cout << "\ndeepreduce pi: the online bytes, rounds and key (the larger party's, per image) of "
                   "deepreduce's own runtime (`deepreduce pi`,\ndealer-assisted) with the ReLU gate "
                << mpc::relu_gate_name(gate) << ", exact by its formula (docs/private_inference.md; `-` where it "
                   "cannot run\nthe network); LAN/WAN: modelled latency"
                << (o->batch > 1 ? " per image in batches of " + std::to_string(o->batch) + " (a batch's rounds shared by its images)"
                                 : std::string())
                << ", compute from " << time.path
                << " plus the link (" << pi::kLan.text << ", " << pi::kWan.text << ").\nEstimates per protocol: MB = online traffic of the ReLUs plus the\nsharing of every "
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
