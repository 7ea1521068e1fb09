#pragma once
// The reduce report: every trained network with its accuracy and PI cost, the
// Pareto frontier (plot and list), the best network per budget, written as
// report.md, results.json (with provenance) and frontier.png/svg.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "pipeline/method.h"
#include "pipeline/reduce.h"
#include "planner/criticality_score.h"

namespace dr::pipeline {

struct ReportInput {
  const ReduceOptions& options;
  const ReducePlan& plan;                        // base spec, input, teacher, order
  const std::vector<std::unique_ptr<Method>>& methods;  // in registry order
  std::vector<planner::StageRow> criticality;     // empty when the order was given
  std::vector<FrontierPoint> points;             // every method's, in method order
  nlohmann::json provenance;                     // taken when the reduce started (train::provenance)
};

// Writes the report files; returns the path of report.md.
std::string write_reduce_report(const ReportInput& in);

}  // namespace dr::pipeline
