#pragma once
// Stage criticality (DeepReDuce step 1): train, for every stage k, the network
// that keeps ReLUs only in stage k, and score it
//     C_k = (A_k - min_j A_j) / (R_k / 1000) ^ 0.07
// (A_k its accuracy with KD, R_k its ReLU count). C = 0 marks the least critical stage.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dr::planner {

struct StageRow {
  std::string stage;
  int64_t relus = 0;
  std::optional<double> acc_no_kd, acc_kd;  // accuracy in percent
  double criticality = 0;                   // C_k
};

// Fills `criticality` of every row from the KD accuracies (or, where a row
// has no KD accuracy, from the accuracies without KD). Throws
// std::invalid_argument if a row has neither or the rows mix the two.
void score_criticality(std::vector<StageRow>& rows);

// Stage names from least to most critical (on a tie the earlier stage first).
std::vector<std::string> least_to_most_critical(const std::vector<StageRow>& rows);

}  // namespace dr::planner
