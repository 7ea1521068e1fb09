#include "pipeline/criticality.h"

#include <iostream>
#include <stdexcept>

#include "arch/spec.h"
#include "pipeline/jobs.h"
#include "report/format.h"
#include "train/snl.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pipeline {

namespace {

using util::path_join;

nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

std::string run_dir(const std::string& out, const std::string& stage, bool kd) {
  return path_join(out, "keep-" + stage + (kd ? ".kd" : ".nokd"));
}

void write_criticality_files(const std::string& out, const std::string& family_spec, const CriticalityResult& r) {
  nlohmann::json j = {{"model", family_spec}, {"order", r.order}, {"stages", nlohmann::json::array()}};
  for (const auto& s : r.rows)
    j["stages"].push_back({{"stage", s.stage},
                           {"relus", s.relus},
                           {"acc_no_kd", optional_json(s.acc_no_kd)},
                           {"acc_kd", optional_json(s.acc_kd)},
                           {"criticality", s.criticality}});
  const report::Table t = criticality_table(r.rows);
  util::write_file_atomic(path_join(out, "criticality.json"), j.dump(2) + "\n");
  util::write_file_atomic(path_join(out, "criticality.md"),
                          "# Stage criticality: " + family_spec + "\n\n" + t.render(report::Format::Markdown) +
                              "\nLeast to most critical: " + util::join(r.order, " < ") +
                              "\n\nC_k = (A_k - min_j A_j) / (R_k / 1000)^0.07 on the " +
                              (r.rows.front().acc_kd ? "KD" : "no-KD") + " accuracies.\n");
  std::cout << "Stage criticality of " << family_spec << "\n"
            << t.render(report::Format::Table) << "least to most critical: " << util::join(r.order, " < ") << "\n";
}

}  // namespace

report::Table criticality_table(const std::vector<planner::StageRow>& rows) {
  report::Table t({{"stage", "stage"},
                   {"relus", "ReLUs", true},
                   {"acc_no_kd", "acc w/o KD (%)", true},
                   {"acc_kd", "acc w/ KD (%)", true},
                   {"criticality", "C_k", true}});
  for (const auto& s : rows)
    t.add_row({s.stage, s.relus, optional_json(s.acc_no_kd), optional_json(s.acc_kd), s.criticality});
  for (const char* k : {"acc_no_kd", "acc_kd", "criticality"})
    t.set_display(k, [](const nlohmann::json& v) { return report::fixed(v.get<double>(), 2); });
  return t;
}

void validate(const CriticalityOptions& o) {
  arch::parse_family_spec(o.train.model, "--model");
  o.train.validate();
  check_sweep(o.sweep);
  if (o.train.teacher.empty()) throw std::invalid_argument("criticality needs --teacher DIR (a finished baseline run)");
  check_output_dir(o.out, "criticality", {"criticality.json", "keep-*"});
  train::check_run_for_data(o.train.teacher, "teacher", o.train.data);
}

CriticalityResult run_criticality(const CriticalityOptions& o) {
  validate(o);
  const arch::ModelSpec base = arch::parse_family_spec(o.train.model, "--model");
  const arch::InputSpec in = arch::parse_source(o.train.data).input;
  std::vector<Job> jobs;
  std::vector<planner::StageRow> rows;
  for (const auto& stage : arch::find_family(base.family).stages) {
    arch::ModelSpec s = base;
    s.keep = {stage};
    const std::string spec = s.canonical();
    rows.push_back({stage, arch::build_network(s, in).totals().relus, std::nullopt, std::nullopt, 0});
    jobs.push_back({"keep " + stage + " with KD", job_config(o.train, spec, run_dir(o.out, stage, true),
                                                             o.train.teacher, false)});
    if (o.without_kd)
      jobs.push_back({"keep " + stage + " without KD", job_config(o.train, spec, run_dir(o.out, stage, false), "",
                                                                  false)});
  }
  size_t index = 0;
  CriticalityResult r;
  const std::optional<Runs> runs = run_phase("criticality", jobs, o.sweep, index);
  if (!runs) return r;
  for (auto& row : rows) {
    row.acc_kd = 100.0 * runs->at(run_dir(o.out, row.stage, true)).test_acc;
    if (o.without_kd) row.acc_no_kd = 100.0 * runs->at(run_dir(o.out, row.stage, false)).test_acc;
  }
  planner::score_criticality(rows);
  r.rows = rows;
  r.order = planner::least_to_most_critical(rows);
  r.complete = true;
  write_criticality_files(o.out, base.canonical(), r);
  return r;
}

}  // namespace dr::pipeline
