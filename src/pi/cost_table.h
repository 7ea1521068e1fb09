#pragma once
// PI-cost columns for tables: every report row (cost, reduce, criticality)
// carries the same columns, built here once.
#include <nlohmann/json.hpp>
#include <vector>

#include "pi/cost.h"
#include "report/table.h"

namespace dr::pi {

// Per protocol: "<id>_mb" online traffic of the ReLUs plus the sharing of the
// linear layers' inputs (MB), and "<id>_s" the ReLUs' online time (s).
std::vector<report::Column> cost_columns(const std::vector<const Protocol*>& protocols);
// The cells for those columns, in the same order.
std::vector<nlohmann::json> cost_cells(const NetworkCost& cost);
// Readable display for those columns (MB with 1 decimal, seconds with 2).
void set_cost_display(report::Table& table, const std::vector<const Protocol*>& protocols);

}  // namespace dr::pi
