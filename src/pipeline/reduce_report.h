#pragma once
// The reduce report: every trained network with its accuracy and PI cost, the
// Pareto frontier (plot and list), the best network per budget, written as
// report.md, results.json (with provenance) and frontier.png/svg.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "pipeline/linearize.h"
#include "pipeline/reduce.h"
#include "search/criticality.h"
#include "search/plan.h"

namespace dr::pipeline {

struct ReportInput {
  const ReduceOptions& options;
  std::string base_spec;
  arch::InputSpec input;
  std::string teacher_dir;
  std::vector<std::string> order;          // least to most critical
  std::vector<search::StageRow> criticality;  // empty when the order was given
  std::vector<search::BudgetPlan> budgets;   // DeepReDuce's picks (empty without that method)
  std::vector<LinearizedPoint> snl, combined;  // the SNL methods' points
  std::string combined_start;                // the DeepReDuce network combined starts from
  nlohmann::json provenance;                 // taken when the reduce started (train::provenance)
};

// Writes the report files; returns the path of report.md.
std::string write_reduce_report(const ReportInput& in);

// The distinct candidates picked over all budgets, in budget order.
std::vector<search::Candidate> picked_candidates(const std::vector<search::BudgetPlan>& budgets);
// The run directory of a candidate: OUT/candidates/<run_name(spec)>.
std::string candidate_dir(const std::string& out, const std::string& spec);

}  // namespace dr::pipeline
