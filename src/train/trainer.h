#pragma once
// Training one network: alone or distilled from a teacher run, resumable.
// A run directory holds
//   config.json    the resolved TrainConfig (enough to rerun it)
//   metrics.jsonl  one JSON object per finished epoch
//   checkpoint.pt  model + optimizer after the last finished epoch
//   weights.pt     final weights (Python: torch.load -> state_dict)
//   result.json    written last: the run's summary; its presence means "finished"
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "arch/datasets.h"
#include "arch/network.h"
#include "nn/net.h"
#include "train/config.h"

namespace dr::train {

struct RunResult {
  std::string dir, spec, data, input;
  int64_t classes = 0, relus = 0, flops = 0, params = 0, epochs = 0;
  double test_acc = 0, test_loss = 0, seconds = 0;
  bool kd = false;
  std::vector<double> mean, std;  // input normalisation the network was trained with
  // Where and when the run started (config.json's provenance), with
  // "finished": where and when it finished (train/provenance.h). Null in
  // older runs; in runs older than "finished", where it finished.
  nlohmann::json provenance;
  std::string weights_sha256;     // of weights.pt ("" in older runs)
  std::string settings_sha256;    // settings_sha256 of its config.json ("" in older runs)
  nlohmann::json to_json() const;
  static RunResult from_json(const nlohmann::json& j);
};

// Hooks for data-parallel training (src/train/distributed.h); null = one process.
class Distributed;

// Trains the run described by `cfg` in cfg.out. Refuses a directory that
// already holds a run (use resume) and a non-empty directory that is not a
// run (a user's own files are never overwritten). Throws on bad settings,
// data or teacher, before any data is read or any file written.
// train, resume and prepare_run hold the directory's lock (util::RunLock)
// while they check and write it: a second writer gets util::DirectoryBusy.
RunResult train(const TrainConfig& cfg, Distributed* dist = nullptr);
// Continues the run in `dir` from its last finished epoch (or returns the
// result of a finished one). Removes temporary files a killed process left,
// rebuilds metrics.jsonl from the checkpoint, and refuses a checkpoint that
// is corrupt or does not match config.json.
RunResult resume(const std::string& dir, Distributed* dist = nullptr, int threads = 0);
// Checks `cfg` as train() does and writes the run's config.json without
// training: `deepreduce resume DIR` (in another process) then trains it.
void prepare_run(TrainConfig cfg);
// `cfg` as its run's config.json records it (crop padding resolved, masks
// installed, starting weights' path absolute): what to compare with a run.
TrainConfig as_recorded(TrainConfig cfg);
// Trains, resumes or reuses: what a sweep wants for each of its runs.
RunResult ensure(const TrainConfig& cfg, Distributed* dist = nullptr);

// The result of a finished run, if `dir` holds one. Its files must agree:
// result.json matches its own SHA-256, config.json's settings digest equals
// the one result.json records (runs older than either digest skip that
// check) and config.json's canonical spec is result.json's spec; otherwise
// std::runtime_error naming the files.
std::optional<RunResult> finished_result(const std::string& dir);
// finished_result with weights.pt checked against result.json
// (check_run_weights) and the network checked (masks.pt against the SHA-256
// config.json records, the ReLUs against result.json): what resume, reuse,
// count and cost of a finished run rely on. `net`: where the network goes.
std::optional<RunResult> verified_result(const std::string& dir, arch::Network* net = nullptr);
// finished_result, or std::invalid_argument saying why `dir` holds no
// finished run: unfinished (config.json but no result.json: resume it) or no
// run at all. `role` names it in the message ("run", "teacher", "--from run").
RunResult require_finished(const std::string& dir, const std::string& role = "run");
// Writes r.dir/result.json (atomically) with its own SHA-256 over every other
// field ("result_sha256"), which finished_result checks when present.
void write_result(const RunResult& r);
// The SHA-256 of a config.json's settings as recorded (the JSON without
// provenance, out, threads, workers and device: what may differ between the
// processes of one run): result.json records it, finished_result checks it.
std::string settings_sha256(const nlohmann::json& config);
TrainConfig read_config(const std::string& dir);  // throws naming the file

// The network of a finished run: its spec on its input, with its pixel
// masks when config.json says masked. Throws std::invalid_argument for a
// directory that is not a finished run (require_finished), std::runtime_error
// naming result.json when the network's ReLUs are not those result.json
// records, or naming masks.pt when it does not match its SHA-256.
arch::Network run_network(const std::string& dir);
// The description `cfg` trains: its model on `input`, with its masks
// (masks_from for a run not started yet, else the run's masks.pt, checked
// against the SHA-256 its config.json records when it records one).
arch::Network config_network(const TrainConfig& cfg, const arch::InputSpec& input);

// Refuses (std::invalid_argument) a `role` run ("teacher", "--from run") that
// is not finished or was trained for another input shape or (input.classes >
// 0) number of classes than `data` ("--data NAME", "this run's data") gives.
void check_run_input(const std::string& dir, const std::string& role, const arch::InputSpec& input,
                     const std::string& data);
// check_run_input for a teacher of this run's data.
void check_teacher(const std::string& dir, const arch::InputSpec& input);

// Everything about `cfg` that can be checked without reading the data: the
// settings, the model spec on the data's input, the teacher. Throws
// std::invalid_argument or arch::SpecError (usage errors).
void validate_before_data(const TrainConfig& cfg);

struct EvalResult {
  std::string spec, data;
  int64_t images = 0, relus = 0;
  double acc = 0, loss = 0;
  int64_t polys = 0;  // polynomial elements (not ReLUs)
};
// Evaluates the final weights of `dir` on its test split (or on `data`).
EvalResult evaluate(const std::string& dir, const std::string& data = "", int threads = 0,
                    const std::string& device = "auto");

// Where and how a network is evaluated (evaluate_net).
struct EvalSetup {
  std::string data;   // a --data source
  int64_t limit = 0;  // as --limit (0: every image)
  // The normalisation the network was trained with, per channel; empty: the
  // data's own statistics.
  std::vector<double> mean, std;
  int threads = 0;
  std::string device = "auto";
  int workers = 2;
};
// Test accuracy and loss of `net` (its weights loaded; `spec` names it) on
// the test split of s.data: what `evaluate` does for a run and
// pipeline::evaluate_onnx for a model file. Throws std::invalid_argument,
// "data 'D' gives S with N classes; <owner> S' with N'", when the data does
// not fit the network, or when a normalisation is not one positive value per
// channel.
EvalResult evaluate_net(nn::Net& net, const std::string& spec, const std::string& owner, const EvalSetup& s);
// Throws std::invalid_argument ("--mean has 2 values for 1 channels", "--std
// values must be positive") unless each of `mean` and `stdev` is empty or
// one value per channel, stdev positive.
void check_normalisation(const std::vector<double>& mean, const std::vector<double>& stdev, int64_t channels);

// Sets LibTorch's intra-op threads (0 = every core; the default here is 1).
void set_threads(int threads);
// cpu, cuda or auto (cuda when available). Throws std::invalid_argument for
// cuda without a CUDA device.
torch::Device resolve_device(const std::string& want);

}  // namespace dr::train
