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

// "1,000 and 500 live ReLUs": a search's budgets, as the plan prints them.
std::string budget_list(const std::vector<int64_t>& budgets);

// The mask-search methods' LinearizeOptions as far as they are known before
// the teacher exists (reduce's --snl-* options, its training settings).
LinearizeOptions snl_options(const ReduceOptions& o);

class SnlMethod : public Method {
 protected:
  // What a removed ReLU becomes (train::SnlOptions::replace).
  virtual std::string replace() const { return "identity"; }
  // The search from `from` ("" = the teacher) to the planned budgets.
  bool run_from(const ReduceOptions& o, const ReducePlan& p, const std::string& from,
                std::vector<FrontierPoint>& points) const;
  // Plans the search's ReLU budgets from the network `start_spec`: --budget's
  // below its count, or for budgets in what users pay (--budget-ms,
  // --budget-mb) the most live ReLUs each allows (pi::relus_within, with
  // removed ReLUs as replace() makes them). A budget the start already meets
  // is refused naming the method (from the teacher, `teacher_start`), or
  // skipped (from another start: none left is refused); so is one that even
  // no ReLU at all cannot meet.
  void plan_budgets(const ReduceOptions& o, const ReducePlan& p, const std::string& start_spec, bool teacher_start);
  std::vector<int64_t> budgets_;  // the search's, in ReLUs
  // The search and fine-tuning settings, once for all these methods, then `own`.
  static void add_notes(const ReduceOptions& o, std::string& notes, const std::string& own);
  void add_results(const ReduceOptions& o, nlohmann::json& results) const override;
};

}  // namespace dr::pipeline
