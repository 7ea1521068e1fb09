// `deepreduce count SPEC...`: where a network's ReLUs, FLOPs and params are.
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "report/format.h"
#include "report/plot.h"
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

nlohmann::json totals_json(const arch::Totals& t) {
  return {{"relus", t.relus}, {"flops", t.flops}, {"params", t.params}};
}

nlohmann::json network_json(const arch::Network& net, bool with_layers) {
  nlohmann::json j = {{"spec", net.spec},   {"family", net.family},
                      {"input", net.input.str()}, {"classes", net.classes}};
  j.update(totals_json(net.totals()));
  j["stages"] = nlohmann::json::array();
  for (const auto& s : net.stage_totals()) {
    auto row = totals_json(s.totals);
    row["name"] = s.name;
    j["stages"].push_back(row);
  }
  if (with_layers) {
    // Enough to rebuild the network elsewhere (bench/, python/deepreduce_model.py):
    // each layer's block, its part of the block (y = post(body(x) + shortcut(x))
    // when residual, else post(body(x))) and its geometry.
    j["layers"] = nlohmann::json::array();
    for (const auto& b : net.blocks) {
      const std::pair<const char*, const std::vector<arch::Layer>*> parts[] = {
          {"body", &b.body}, {"shortcut", &b.shortcut}, {"post", &b.post}};
      for (const auto& [part, layers] : parts)
        for (const auto& l0 : *layers) {
          const auto* l = &l0;
          j["layers"].push_back({{"name", l->name},
                                 {"kind", arch::op_name(l->op)},
                                 {"stage", l->stage},
                                 {"out_shape", l->out.str()},
                                 {"live", l->op != arch::Op::ReLU || l->live},
                                 {"relus", l->relus()},
                                 {"flops", l->flops()},
                                 {"params", l->params()},
                                 {"block", b.name},
                                 {"residual", b.residual},
                                 {"part", part},
                                 {"in_shape", l->in.str()},
                                 {"in_ch", l->in_ch},
                                 {"out_ch", l->out_ch},
                                 {"kernel", l->kernel},
                                 {"stride", l->stride},
                                 {"padding", l->padding},
                                 {"groups", l->groups},
                                 {"bias", l->bias}});
        }
    }
  }
  return j;
}

double pct(int64_t part, int64_t whole) { return whole ? 100.0 * part / whole : 0.0; }

report::Table stage_table(const arch::Network& net) {
  const arch::Totals all = net.totals();
  report::Table t({{"stage", "stage"},
                   {"relus", "ReLUs", true},
                   {"relus_pct", "% ReLUs", true},
                   {"flops", "FLOPs (MACs)", true},
                   {"flops_pct", "% FLOPs", true},
                   {"params", "params", true},
                   {"params_pct", "% params", true}});
  auto add = [&](const std::string& name, const arch::Totals& s) {
    t.add_row({name, s.relus, pct(s.relus, all.relus), s.flops, pct(s.flops, all.flops), s.params,
               pct(s.params, all.params)});
  };
  for (const auto& s : net.stage_totals()) add(s.name, s.totals);
  add("total", all);
  for (const char* k : {"relus_pct", "flops_pct", "params_pct"})
    t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
  return t;
}

report::Table layer_table(const arch::Network& net) {
  report::Table t({{"name", "layer"},
                   {"kind", "kind"},
                   {"stage", "stage"},
                   {"out_shape", "output"},
                   {"relus", "ReLUs", true},
                   {"flops", "FLOPs (MACs)", true},
                   {"params", "params", true}});
  for (const auto* l : net.layers()) {
    std::string kind = arch::op_name(l->op);
    if (l->op == arch::Op::ReLU && !l->live) kind = "relu (removed)";
    if (l->op == arch::Op::Conv && l->groups > 1) kind = "conv dw";
    t.add_row({l->name, kind, l->stage, l->out.str(), l->relus(), l->flops(), l->params()});
  }
  return t;
}

// Figure 7 of the appendix: per conv/FC layer, its share of params, FLOPs and
// ReLUs. A ReLU is charged to the conv/FC whose output it sees (a ResNet's
// post-add relu2 to the block's last body conv).
void plot_figure7(const arch::Network& net, const std::string& file) {
  std::vector<std::string> names;
  std::vector<arch::Totals> per;
  for (const auto& b : net.blocks) {
    int last_body = -1;
    auto visit = [&](const std::vector<arch::Layer>& list, bool is_body) {
      for (const auto& l : list) {
        if (l.op == arch::Op::Conv || l.op == arch::Op::Linear) {
          names.push_back(l.name);
          per.push_back({0, l.flops(), l.params()});
          if (is_body) last_body = static_cast<int>(per.size()) - 1;
        } else if (!per.empty()) {
          const int target = is_body ? static_cast<int>(per.size()) - 1 : last_body;
          if (target >= 0) per[target].params += l.params(), per[target].relus += l.relus();
        }
      }
    };
    visit(b.body, true);
    visit(b.shortcut, false);
    visit(b.post, false);
  }
  const arch::Totals all = net.totals();
  report::BarSeries p{"params", {}}, f{"FLOPs", {}}, r{"ReLUs", {}};
  for (const auto& t : per) {
    p.values.push_back(pct(t.params, all.params));
    f.values.push_back(pct(t.flops, all.flops));
    r.values.push_back(pct(t.relus, all.relus));
  }
  report::plot_grouped_bars(file,
                            "Layer-wise share of params, FLOPs and ReLUs: " + net.spec + " on " +
                                net.input.str() + " (" + report::thousands(all.relus) + " ReLUs)",
                            names, {p, f, r}, "% of network total");
}

void run_count(const CountOptions& o) {
  std::vector<arch::Network> nets;
  std::vector<std::string> described;
  for (const auto& spec : o.specs) {
    const arch::ModelSpec ms = arch::parse_spec(spec);
    std::string d;
    const arch::InputSpec in = o.input.resolve(ms.family, &d);
    nets.push_back(arch::build_network(ms, in));
    described.push_back(d);
  }
  const auto fmt = report::parse_format(o.format);
  if (!o.plot.empty()) {
    if (nets.size() != 1) throw UsageError("--plot draws one network; give a single SPEC");
    plot_figure7(nets[0], o.plot);
    std::cerr << "wrote " << o.plot << "\n";
  }
  if (fmt == report::Format::Json) {
    nlohmann::json j;
    if (nets.size() == 1) {
      j = network_json(nets[0], o.layers);
    } else {
      j = nlohmann::json::array();
      for (const auto& n : nets) j.push_back(network_json(n, o.layers));
    }
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (nets.size() == 1) {
    const auto& net = nets[0];
    if (fmt == report::Format::Table)
      std::cout << net.spec << " on " << described[0] << ": " << report::thousands(net.totals().relus)
                << " ReLUs\n\n";
    std::cout << stage_table(net).render(fmt);
    if (o.layers) std::cout << "\n" << layer_table(net).render(fmt);
    return;
  }
  // A comparison table: one row per spec, with per-stage ReLUs.
  std::vector<report::Column> cols = {{"spec", "spec"}, {"input", "input"}, {"relus", "ReLUs", true}};
  const auto& stages = nets[0].stages;
  bool same_stages = true;
  for (const auto& n : nets) same_stages = same_stages && n.stages == stages;
  if (same_stages)
    for (const auto& s : stages) cols.push_back({s, s + " ReLUs", true});
  cols.push_back({"flops", "FLOPs (MACs)", true});
  cols.push_back({"params", "params", true});
  report::Table t(cols);
  for (const auto& n : nets) {
    std::vector<nlohmann::json> row = {n.spec, n.input.str(), n.totals().relus};
    if (same_stages)
      for (const auto& s : n.stage_totals())
        if (std::find(stages.begin(), stages.end(), s.name) != stages.end()) row.push_back(s.totals.relus);
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
  cmd->add_option("SPEC", o->specs, "Model spec(s), e.g. resnet18:cull=S1:thin:alpha=0.5")->required();
  o->input.add_options(cmd);
  cmd->add_flag("--layers", o->layers, "Also list every layer");
  cmd->add_option("--format", o->format, "Output format: table, md, csv, json")->capture_default_str();
  cmd->add_option("--plot", o->plot,
                  "Draw the layer-wise % of params, FLOPs and ReLUs (appendix Figure 7) to FILE (.png or .svg)");
  cmd->callback([o] { run_count(*o); });
}

}  // namespace dr::cli
