#pragma once
// What the pipeline commands share: a training job, the phases of a sweep
// (each job an ordinary run directory: a finished one is reused, a killed one
// resumed), and sharding of the job list over processes.
#include <string>
#include <vector>

#include "search/plan.h"
#include "train/config.h"

namespace dr::pipeline {

struct Job {
  std::string what;  // for messages
  train::TrainConfig cfg;
};

// Runs the jobs of one phase that belong to this shard (job numbers continue
// across phases through `next_index`), then waits for the other shards' runs
// (polling every 10 s). Returns false when some are missing and `wait` is off.
bool run_phase(const std::string& phase, const std::vector<Job>& jobs, const search::Shard& shard, bool wait,
               size_t& next_index);

// `base` with the model, run directory and teacher of one job; init
// "teacher" when asked and there is a teacher.
train::TrainConfig job_config(const train::TrainConfig& base, const std::string& spec, const std::string& out,
                              const std::string& teacher, bool init_from_teacher);

// A run directory name for a spec: "resnet18:cull=S1:thin=relu2" -> "resnet18_cull-S1_thin-relu2".
std::string run_name(const std::string& spec);

}  // namespace dr::pipeline
