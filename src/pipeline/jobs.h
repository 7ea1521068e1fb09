#pragma once
// What the pipeline commands share: a training job, the phases of a sweep
// (each job an ordinary run directory: a finished one is reused, a killed one
// resumed), and sharding of the job list over processes.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "planner/candidates.h"
#include "train/config.h"
#include "train/trainer.h"

namespace dr::pipeline {

struct Job {
  std::string what;  // for messages
  train::TrainConfig cfg;
};

// How a process takes part in a sweep.
struct Sweep {
  planner::Shard shard;  // the jobs j with j mod count = index
  bool wait = true;     // wait for the other shards' runs instead of stopping
  int jobs = 1;         // trainings at once, as child processes sharing the cores
};

// Refuses --jobs outside 1..cores (std::invalid_argument).
void check_sweep(const Sweep& sweep);

// The finished runs of a pipeline so far: run directory -> its result
// (read and checked once, when the run finished or was found finished).
using Runs = std::map<std::string, train::RunResult>;

// Runs the jobs of one phase that belong to this shard (job numbers continue
// across phases through `next_index`), one after the other or, with
// sweep.jobs > 1, up to that many at once as `deepreduce resume DIR`
// processes with the cores split between them (each logging to
// DIR/train.log). Then waits for the other shards' runs (polling every 10 s).
// Returns every job's result, or nullopt when some are missing and waiting is
// off. Data-parallel (dist): every rank runs each job as one data-parallel
// training (sweep: one shard, --jobs 1) and rank 0 alone prints.
// Refuses (std::invalid_argument) a sweep that data-parallel ranks cannot
// share: with dist, every rank trains each job together, so one shard and
// --jobs 1.
void check_sweep_for_ranks(const Sweep& sweep, const train::Distributed* dist);

std::optional<Runs> run_phase(const std::string& phase, const std::vector<Job>& jobs, const Sweep& sweep,
                              size_t& next_index, train::Distributed* dist = nullptr);

// `base` with the model, run directory and teacher of one job; init
// "teacher" when asked and there is a teacher.
train::TrainConfig job_config(const train::TrainConfig& base, const std::string& spec, const std::string& out,
                              const std::string& teacher, bool init_from_teacher);

// Refuses (std::invalid_argument) an output directory `out` of `command`
// that is neither missing, empty, nor that command's own earlier output, so
// that no user's files (a report.md of their own, ...) are overwritten; its
// own output is continued or reused. Own output = it holds one of `markers`:
// paths inside `out`, where a last component ending in '*' matches by prefix
// ("keep-*"). Called before any work.
void check_output_dir(const std::string& out, const std::string& command, const std::vector<std::string>& markers);

// A run directory name for a spec: "resnet18:cull=S1:thin=relu2" ->
// "resnet18_cull-S1_thin-relu2"; a model file's by its file name:
// "/data/cnn.onnx:cull=S1,S2" -> "cnn.onnx_cull-S1+S2".
std::string run_name(const std::string& spec);

}  // namespace dr::pipeline
