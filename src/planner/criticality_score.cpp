#include "planner/criticality_score.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace dr::planner {

void score_criticality(std::vector<StageRow>& rows) {
  if (rows.empty()) return;
  const bool kd = rows.front().acc_kd.has_value();
  for (const auto& r : rows) {
    if (r.acc_kd.has_value() != kd || (!kd && !r.acc_no_kd))
      throw std::invalid_argument("criticality of stage " + r.stage +
                                  ": every stage needs an accuracy with KD (or every stage one without)");
    if (r.relus <= 0)
      throw std::invalid_argument("criticality of stage " + r.stage + ": it keeps no ReLUs");
  }
  auto acc = [kd](const StageRow& r) { return kd ? *r.acc_kd : *r.acc_no_kd; };
  double min_acc = acc(rows.front());
  for (const auto& r : rows) min_acc = std::min(min_acc, acc(r));
  for (auto& r : rows) r.criticality = (acc(r) - min_acc) / std::pow(r.relus / 1000.0, 0.07);
}

std::vector<std::string> least_to_most_critical(const std::vector<StageRow>& rows) {
  std::vector<size_t> idx(rows.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t a, size_t b) { return rows[a].criticality < rows[b].criticality; });
  std::vector<std::string> out;
  for (size_t i : idx) out.push_back(rows[i].stage);
  return out;
}

}  // namespace dr::planner
