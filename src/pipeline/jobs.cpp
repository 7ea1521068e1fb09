#include "pipeline/jobs.h"

#include <chrono>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "train/distributed.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace dr::pipeline {

namespace {

// Up to `parallel` jobs at once, each `deepreduce resume DIR --threads T`
// with T = cores / parallel; a failed job is reported after the others end.
void run_in_processes(const std::string& phase, const std::vector<const Job*>& todo, int parallel, Runs& runs) {
  const std::string bin = util::self_executable();
  const int threads = std::max(1, train::max_threads() / parallel);
  std::vector<util::Child> running;
  std::vector<const Job*> owner;
  std::vector<std::string> failed;
  size_t next = 0;
  while (next < todo.size() || !running.empty()) {
    if (next < todo.size() && static_cast<int>(running.size()) < parallel) {
      const Job& job = *todo[next++];
      if (!util::file_exists(util::path_join(job.cfg.out, "config.json"))) train::prepare_run(job.cfg);
      const std::string log = util::path_join(job.cfg.out, "train.log");
      std::cerr << "[" << phase << "] " << job.what << " -> " << job.cfg.out << " (started with --threads "
                << threads << ", log " << log << ")\n";
      running.push_back(util::spawn_logged({bin, "resume", job.cfg.out, "--threads", std::to_string(threads)}, log));
      owner.push_back(&job);
      continue;
    }
    int rc = 0;
    const size_t i = util::wait_any(running, &rc);
    const Job& job = *owner[i];
    const auto r = train::finished_result(job.cfg.out);
    if (rc == 0 && r) {
      std::cerr << "[" << phase << "] " << job.what << " finished: test accuracy " << r->test_acc << "\n";
      runs[job.cfg.out] = *r;
    } else {
      failed.push_back(job.cfg.out + " (exit " + std::to_string(rc) + ", see " +
                       util::path_join(job.cfg.out, "train.log") + ")");
    }
    running.erase(running.begin() + static_cast<long>(i));
    owner.erase(owner.begin() + static_cast<long>(i));
  }
  if (!failed.empty())
    throw std::runtime_error(std::to_string(failed.size()) + " training(s) of the " + phase +
                             " phase failed: " + util::join(failed, "; "));
}

// A finished run is reused only when it was made with this job's settings:
// a sweep whose settings changed (more epochs, another lr) must not report
// old runs as new ones.
void check_reusable(const Job& job) {
  const train::TrainConfig recorded = train::read_config(job.cfg.out);
  const std::string diff = train::first_difference(recorded.result_settings(), job.cfg.out + "/config.json",
                                                   train::as_recorded(job.cfg).result_settings(), "this command");
  if (!diff.empty())
    throw std::invalid_argument("'" + job.cfg.out + "' holds a finished run made with other settings (" + diff +
                                "): remove it, or choose another --out");
}

}  // namespace

void check_sweep(const Sweep& sweep) {
  if (sweep.jobs < 1 || sweep.jobs > train::max_threads())
    throw std::invalid_argument("--jobs must be in 1.." + std::to_string(train::max_threads()) +
                                " (trainings at once, at least one core each; got " + std::to_string(sweep.jobs) + ")");
}

namespace {

// Waits (or not) for the runs of the other shards; false when some are
// missing and waiting is off.
bool wait_for_others(const std::string& phase, const std::vector<const Job*>& others, const Sweep& sweep, Runs& runs) {
  for (bool first = true;; first = false) {
    std::vector<std::string> missing;
    for (const Job* j : others) {
      if (runs.count(j->cfg.out)) continue;
      if (auto r = train::finished_result(j->cfg.out))
        runs[j->cfg.out] = *r;
      else
        missing.push_back(j->cfg.out);
    }
    if (missing.empty()) return true;
    if (!sweep.wait) {
      std::cerr << "[" << phase << "] shard " << sweep.shard.str() << " has finished its runs; " << missing.size()
                << " run(s) of other shards are not finished yet (" << util::join(missing)
                << "). Run this command again when they are.\n";
      return false;
    }
    if (first)
      std::cerr << "[" << phase << "] shard " << sweep.shard.str() << " waiting for " << missing.size()
                << " run(s) of other shards: " << util::join(missing) << "\n";
    std::this_thread::sleep_for(std::chrono::seconds(10));
  }
}

}  // namespace

void check_sweep_for_ranks(const Sweep& sweep, const train::Distributed* dist) {
  if (dist && (sweep.jobs > 1 || sweep.shard.count > 1))
    throw std::invalid_argument("data-parallel (WORLD_SIZE > 1): every rank trains each run together, so --jobs "
                                "must be 1 and --shard 0/1");
}

std::optional<Runs> run_phase(const std::string& phase, const std::vector<Job>& jobs, const Sweep& sweep,
                              size_t& next_index, train::Distributed* dist) {
  check_sweep_for_ranks(sweep, dist);
  const bool rank0 = !dist || dist->rank() == 0;
  Runs runs;
  std::vector<const Job*> others, todo;
  for (const auto& job : jobs) {
    if (!sweep.shard.owns(next_index++)) {
      others.push_back(&job);
      continue;
    }
    const auto done = train::finished_result(job.cfg.out);
    if (done) check_reusable(job);
    if (sweep.jobs > 1 && !done) {
      todo.push_back(&job);
      continue;
    }
    if (rank0)
      std::cerr << "[" << phase << "] " << job.what << " -> " << job.cfg.out << (done ? " (finished, reused)" : "")
                << "\n";
    runs[job.cfg.out] = train::ensure(job.cfg, dist);  // a finished one: verified (weights.pt too) and reused
  }
  if (!todo.empty()) run_in_processes(phase, todo, std::min<int>(sweep.jobs, static_cast<int>(todo.size())), runs);
  if (!wait_for_others(phase, others, sweep, runs)) return std::nullopt;
  return runs;
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
  // A model file's spec names it by its absolute path: its file name only,
  // so the run stays inside the directory it is joined to.
  const size_t family_end = std::min(spec.find(':'), spec.size());
  const size_t slash = spec.rfind('/', family_end);
  std::string s;
  for (char c : spec.substr(slash == std::string::npos ? 0 : slash + 1))
    s += c == ':' ? '_' : c == '=' ? '-' : c == ',' ? '+' : c;
  return s;
}

namespace {

bool holds(const std::string& out, const std::string& marker) {
  namespace fs = std::filesystem;
  if (marker.empty() || marker.back() != '*') return util::file_exists(util::path_join(out, marker));
  const fs::path m(marker);
  const fs::path parent = fs::path(out) / m.parent_path();
  std::string prefix = m.filename().string();
  prefix.pop_back();
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

}  // namespace

void check_output_dir(const std::string& out, const std::string& command, const std::vector<std::string>& markers) {
  namespace fs = std::filesystem;
  if (out.empty()) throw std::invalid_argument("--out DIR is required");
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw std::invalid_argument("--out '" + out + "' is a file, not a directory");
  if (util::is_empty_or_missing(out)) return;
  for (const auto& m : markers)
    if (holds(out, m)) return;
  throw std::invalid_argument("--out '" + out + "' is not empty and holds no `deepreduce " + command +
                              "` output (none of " + util::join(markers, ", ") +
                              "): choose a new or empty directory, so that nothing of yours is overwritten");
}

}  // namespace dr::pipeline
