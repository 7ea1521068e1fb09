#pragma once
// Stage criticality (DeepReDuce step 1, docs/method.md): per stage, train the
// network that keeps only that stage's ReLUs, with KD (and without), and rank
// the stages by C_k. Output directory:
//   keep-S1.kd/, keep-S1.nokd/, ...   one run per stage and KD setting
//   criticality.json, criticality.md  the table and the order
#include <string>
#include <vector>

#include "report/table.h"
#include "planner/criticality_score.h"
#include "pipeline/jobs.h"
#include "planner/candidates.h"
#include "train/config.h"

namespace dr::pipeline {

struct CriticalityOptions {
  train::TrainConfig train;  // model = the family spec, data, epochs, ...; teacher required
  std::string out;           // where the runs and criticality.{json,md} go
  bool without_kd = true;    // also train each stage without KD
  Sweep sweep;               // shard, waiting, trainings at once
};

struct CriticalityResult {
  std::vector<planner::StageRow> rows;
  std::vector<std::string> order;  // least to most critical
  bool complete = false;           // false: other shards' runs still missing
};

// Refuses a bad family spec or teacher before any data is read.
void validate(const CriticalityOptions& o);
CriticalityResult run_criticality(const CriticalityOptions& o);

// The table criticality.md, the reduce report and stdout show: stage, ReLUs,
// accuracy without and with KD (%), C_k.
report::Table criticality_table(const std::vector<planner::StageRow>& rows);

}  // namespace dr::pipeline
