#include "pi/cost_table.h"

#include "report/format.h"

namespace dr::pi {

std::vector<report::Column> cost_columns(const std::vector<const Protocol*>& protocols) {
  std::vector<report::Column> cols;
  for (const auto* p : protocols) {
    cols.push_back({p->id + "_mb", p->id + " MB", true});
    cols.push_back({p->id + "_s", p->id + " s", true});
  }
  return cols;
}

std::vector<nlohmann::json> cost_cells(const NetworkCost& cost) {
  std::vector<nlohmann::json> cells;
  for (const auto& p : cost.per_protocol) {
    cells.push_back(cost.total_bytes(p) / 1e6);
    cells.push_back(p.relu_seconds ? nlohmann::json(*p.relu_seconds) : nlohmann::json(nullptr));
  }
  return cells;
}

void set_cost_display(report::Table& table, const std::vector<const Protocol*>& protocols) {
  for (const auto* p : protocols) {
    table.set_display(p->id + "_mb", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 1); });
    table.set_display(p->id + "_s", [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  }
}

}  // namespace dr::pi
