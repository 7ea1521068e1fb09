#pragma once
// The Pareto frontier of ReLU count against accuracy.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dr::planner {

struct Point {
  int64_t relus = 0;
  double acc = 0;
};

// Indices of the non-dominated points: no other point has at most as many
// ReLUs and a higher accuracy, or fewer ReLUs and the same accuracy. Sorted by
// ReLUs, fewest first. Of identical points the first is kept.
std::vector<size_t> pareto_front(const std::vector<Point>& points);

}  // namespace dr::planner
