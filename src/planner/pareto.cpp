#include "planner/pareto.h"

#include <algorithm>
#include <numeric>

namespace dr::planner {

std::vector<size_t> pareto_front(const std::vector<Point>& p) {
  std::vector<size_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  // Fewest ReLUs first; on equal ReLUs the most accurate first.
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    return p[a].relus != p[b].relus ? p[a].relus < p[b].relus : p[a].acc > p[b].acc;
  });
  std::vector<size_t> front;
  double best = -1e300;
  for (size_t i : idx)
    if (p[i].acc > best) {  // strictly better than everything with fewer or equal ReLUs
      front.push_back(i);
      best = p[i].acc;
    }
  return front;
}

}  // namespace dr::planner
