#pragma once
// What reduce's mask-search methods share (snl, combined, poly): a
// `linearize` run (pipeline/linearize.h) under OUT/<name> from a starting
// network to every budget below it, its points, and one paragraph and one
// results.json section for all of them.
#include <string>
#include <vector>

#include "pipeline/linearize.h"
#include "pipeline/method.h"
#include "pipeline/reduce.h"

namespace dr::pipeline {

// The budgets of `budgets` below `relus`, in their order.
std::vector<int64_t> budgets_below(const std::vector<int64_t>& budgets, int64_t relus);

// The mask-search methods' LinearizeOptions as far as they are known before
// the teacher exists (reduce's --snl-* options, its training settings).
LinearizeOptions snl_options(const ReduceOptions& o);

class SnlMethod : public Method {
 protected:
  // What a removed ReLU becomes (train::SnlOptions::replace).
  virtual std::string replace() const { return "identity"; }
  // The search from `from` ("" = the teacher) to the budgets below `start_relus`.
  bool run_from(const ReduceOptions& o, const ReducePlan& p, const std::string& from, int64_t start_relus,
                std::vector<FrontierPoint>& points) const;
  // Refuses a budget that is not below the teacher's count, naming the method.
  void check_below_teacher(const ReduceOptions& o, const ReducePlan& p) const;
  // The search and fine-tuning settings, once for all these methods, then `own`.
  static void add_notes(const ReduceOptions& o, std::string& notes, const std::string& own);
  void add_results(const ReduceOptions& o, nlohmann::json& results) const override;
};

}  // namespace dr::pipeline
