#include "report/network_tables.h"

#include "report/format.h"
#include "report/plot.h"

namespace dr::report {

namespace {

double pct(int64_t part, int64_t whole) { return whole ? 100.0 * part / whole : 0.0; }

}  // namespace

Table stage_table(const arch::Network& net) {
  const arch::Totals all = net.totals();
  // Polynomial elements (a secure multiplication each, not a ReLU) get a
  // column of their own where there are any.
  const bool polys = all.polys > 0;
  std::vector<Column> cols = {{"stage", "stage"}, {"relus", "ReLUs", true}, {"relus_pct", "% ReLUs", true}};
  if (polys) cols.push_back({"polys", "poly elements", true});
  for (const Column& c : std::vector<Column>{{"flops", "FLOPs (MACs)", true},
                                             {"flops_pct", "% FLOPs", true},
                                             {"params", "params", true},
                                             {"params_pct", "% params", true}})
    cols.push_back(c);
  Table t(cols);
  auto add = [&](const std::string& name, const arch::Totals& s) {
    std::vector<nlohmann::json> row = {name, s.relus, pct(s.relus, all.relus)};
    if (polys) row.push_back(s.polys);
    for (const nlohmann::json& v : {nlohmann::json(s.flops), nlohmann::json(pct(s.flops, all.flops)),
                                    nlohmann::json(s.params), nlohmann::json(pct(s.params, all.params))})
      row.push_back(v);
    t.add_row(row);
  };
  for (const auto& s : net.stage_totals()) add(s.name, s.totals);
  add("total", all);
  for (const char* k : {"relus_pct", "flops_pct", "params_pct"})
    t.set_display(k, [](const nlohmann::json& v) { return fixed(v.get<double>(), 1); });
  return t;
}

Table layer_table(const arch::Network& net) {
  const bool polys = net.totals().polys > 0;
  std::vector<Column> cols = {{"name", "layer"}, {"kind", "kind"}, {"stage", "stage"}, {"out_shape", "output"},
                              {"relus", "ReLUs", true}};
  if (polys) cols.push_back({"polys", "poly elements", true});
  cols.push_back({"flops", "FLOPs (MACs)", true});
  cols.push_back({"params", "params", true});
  Table t(cols);
  for (const auto* l : net.layers()) {
    std::string kind = arch::op_name(l->op);
    if (l->op == arch::Op::ReLU && !l->live) kind = "relu (removed)";
    else if (l->op == arch::Op::ReLU && l->relus() == 0 && l->polys() == 0) kind = "relu (masked out)";
    else if (l->op == arch::Op::ReLU && l->polys() > 0) kind = l->relus() > 0 ? "relu (masked, poly)" : "poly";
    else if (l->op == arch::Op::ReLU && l->relus() < l->out.numel()) kind = "relu (masked)";
    if (l->op == arch::Op::Conv && l->groups > 1) kind = "conv dw";
    std::vector<nlohmann::json> row = {l->name, kind, l->stage, l->out.str(), l->relus()};
    if (polys) row.push_back(l->polys());
    row.push_back(l->flops());
    row.push_back(l->params());
    t.add_row(row);
  }
  return t;
}

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
  BarSeries p{"params", {}}, f{"FLOPs", {}}, r{"ReLUs", {}};
  for (const auto& t : per) {
    p.values.push_back(pct(t.params, all.params));
    f.values.push_back(pct(t.flops, all.flops));
    r.values.push_back(pct(t.relus, all.relus));
  }
  plot_grouped_bars(file,
                            "Layer-wise share of params, FLOPs and ReLUs: " + net.spec + " on " +
                                net.input.str() + " (" + thousands(all.relus) + " ReLUs)",
                            names, {p, f, r}, "% of network total");
}

}  // namespace dr::report
