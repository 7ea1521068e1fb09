#include "pipeline/jobs.h"

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "train/trainer.h"
#include "util/strings.h"

namespace dr::pipeline {

bool run_phase(const std::string& phase, const std::vector<Job>& jobs, const search::Shard& shard, bool wait,
               size_t& next_index) {
  std::vector<const Job*> others;
  for (const auto& job : jobs) {
    if (!shard.owns(next_index++)) {
      others.push_back(&job);
      continue;
    }
    const bool done = train::finished_result(job.cfg.out).has_value();
    std::cerr << "[" << phase << "] " << job.what << " -> " << job.cfg.out << (done ? " (finished, reused)" : "")
              << "\n";
    train::ensure(job.cfg);
  }
  for (bool first = true;; first = false) {
    std::vector<std::string> missing;
    for (const Job* j : others)
      if (!train::finished_result(j->cfg.out)) missing.push_back(j->cfg.out);
    if (missing.empty()) return true;
    if (!wait) {
      std::cerr << "[" << phase << "] shard " << shard.str() << " has finished its runs; " << missing.size()
                << " run(s) of other shards are not finished yet (" << util::join(missing)
                << "). Run this command again when they are.\n";
      return false;
    }
    if (first)
      std::cerr << "[" << phase << "] shard " << shard.str() << " waiting for " << missing.size()
                << " run(s) of other shards: " << util::join(missing) << "\n";
    std::this_thread::sleep_for(std::chrono::seconds(10));
  }
}

train::TrainConfig job_config(const train::TrainConfig& base, const std::string& spec, const std::string& out,
                              const std::string& teacher, bool init_from_teacher) {
  train::TrainConfig c = base;
  c.model = spec;
  c.out = out;
  c.teacher = teacher;
  c.init = init_from_teacher && !teacher.empty() ? "teacher" : "";
  return c;
}

std::string run_name(const std::string& spec) {
  std::string s;
  for (char c : spec) s += c == ':' ? '_' : c == '=' ? '-' : c == ',' ? '+' : c;
  return s;
}

}  // namespace dr::pipeline
