// The files of a run directory that say what a run is: result.json (its
// presence means finished) and config.json.
#include <stdexcept>

#include <filesystem>

#include "arch/family.h"
#include "arch/spec.h"
#include "train/common.h"
#include "train/masks.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/hash.h"

namespace dr::train {

namespace {

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(util::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + path + "' is not valid JSON: " + e.what());
  }
}

// A finished run's files must tell one story: result.json's settings digest
// (when it records one) is that of config.json, and its spec is the one
// config.json trains. Throws std::runtime_error naming the files.
void check_files_agree(const std::string& dir, const RunResult& r) {
  const std::string cp = util::path_join(dir, "config.json"), rp = util::path_join(dir, "result.json");
  if (!util::file_exists(cp))
    throw std::runtime_error("'" + rp + "' has no config.json beside it: '" + dir + "' is not a whole run");
  const nlohmann::json config = read_json(cp);
  if (!r.settings_sha256.empty() && settings_sha256(config) != r.settings_sha256)
    throw std::runtime_error("'" + cp + "' was changed after the run finished: its settings do not match the "
                             "SHA-256 recorded in '" + rp + "' (restore it, or train a new run)");
  std::string spec;
  try {
    spec = arch::parse_spec(TrainConfig::from_json(config, cp).model).canonical();
  } catch (const std::exception& e) {
    throw std::runtime_error("'" + cp + "': " + e.what());
  }
  if (spec != r.spec)
    throw std::runtime_error("the files of run '" + dir + "' disagree: '" + rp + "' records spec " + r.spec +
                             ", '" + cp + "' trains " + spec + " (was one of them edited?)");
}

const char* const kResultDigest = "result_sha256";

// result.json's digest of itself: the SHA-256 of the canonical dump (keys
// sorted, no spaces) of every other field. It catches an edited or damaged
// file, not a forger, who can compute it too.
std::string result_sha256(nlohmann::json j) {
  j.erase(kResultDigest);
  return util::sha256_hex(j.dump());
}

// The network of finished run `r` (in `dir`): config.json's spec with its
// masks, whose ReLUs must be those result.json records.
arch::Network checked_network(const std::string& dir, const RunResult& r) {
  TrainConfig c = read_config(dir);
  arch::Network net = config_network(c, {arch::parse_shape(r.input), r.classes});
  if (net.totals().relus != r.relus)
    throw std::runtime_error("the files of run '" + dir + "' disagree: '" + util::path_join(dir, "result.json") +
                             "' records " + std::to_string(r.relus) + " ReLUs, the network of its config.json" +
                             (c.masked ? " and masks.pt" : "") + " has " + std::to_string(net.totals().relus) +
                             " (was one of them edited?)");
  return net;
}

// A run's masks.pt, checked against the SHA-256 its config.json records
// (runs older than the digest record none).
MaskSet load_run_masks(const std::string& dir) {
  const std::string cp = util::path_join(dir, "config.json");
  const nlohmann::json config = util::file_exists(cp) ? read_json(cp) : nlohmann::json::object();
  const auto digest = config.is_object() && config.contains("masks_sha256") ? config["masks_sha256"] : nlohmann::json("");
  if (!digest.is_string()) throw std::runtime_error("'" + cp + "': field 'masks_sha256' is not a SHA-256 (hex text)");
  return load_masks(util::path_join(dir, "masks.pt"), digest.get<std::string>(), cp);
}

}  // namespace

std::string settings_sha256(const nlohmann::json& config) {
  nlohmann::json j = config;
  for (const char* k : {"provenance", "out", "threads", "workers", "device", "data_path"}) j.erase(k);
  return util::sha256_hex(j.dump());
}

nlohmann::json RunResult::to_json() const {
  nlohmann::json j = {{"dir", dir},         {"spec", spec},         {"data", data},       {"input", input},
                      {"classes", classes}, {"relus", relus},       {"flops", flops},     {"params", params},
                      {"epochs", epochs},   {"test_acc", test_acc}, {"test_loss", test_loss}, {"seconds", seconds},
                      {"kd", kd},           {"mean", mean},         {"std", std}};
  if (!weights_sha256.empty()) j["weights_sha256"] = weights_sha256;
  if (!settings_sha256.empty()) j["settings_sha256"] = settings_sha256;
  if (!provenance.is_null()) j["provenance"] = provenance;
  return j;
}

RunResult RunResult::from_json(const nlohmann::json& j) {
  RunResult r;
  r.dir = j.value("dir", "");
  r.spec = j.at("spec");
  r.data = j.value("data", "");
  r.input = j.at("input");
  r.classes = j.at("classes");
  r.relus = j.at("relus");
  r.flops = j.value("flops", 0);
  r.params = j.value("params", 0);
  r.epochs = j.value("epochs", 0);
  r.test_acc = j.at("test_acc");
  r.test_loss = j.contains("test_loss") ? loss_from_json(j["test_loss"]) : 0.0;
  r.seconds = j.value("seconds", 0.0);
  r.kd = j.value("kd", false);
  r.mean = j.value("mean", std::vector<double>{});
  r.std = j.value("std", std::vector<double>{});
  r.provenance = j.value("provenance", nlohmann::json());
  r.weights_sha256 = j.value("weights_sha256", "");
  r.settings_sha256 = j.value("settings_sha256", "");
  return r;
}

void write_result(const RunResult& r) {
  nlohmann::json j = r.to_json();
  j[kResultDigest] = result_sha256(j);
  util::write_file_atomic(util::path_join(r.dir, "result.json"), j.dump(2) + "\n");
}

std::optional<RunResult> finished_result(const std::string& dir) {
  const std::string p = util::path_join(dir, "result.json");
  if (!util::file_exists(p)) return std::nullopt;
  const nlohmann::json j = read_json(p);
  // Runs older than the digest have none: their other checks still apply.
  if (j.is_object() && j.contains(kResultDigest) && j[kResultDigest] != result_sha256(j))
    throw std::runtime_error("'" + p + "' was edited after the run finished: its fields do not match the SHA-256 "
                             "it records (" + std::string(kResultDigest) + "); restore it, or train a new run");
  RunResult r;
  try {
    r = RunResult::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("'" + p + "' is not a deepreduce result: " + e.what());
  }
  r.dir = dir;
  check_files_agree(dir, r);
  return r;
}

RunResult require_finished(const std::string& dir, const std::string& role) {
  if (auto r = finished_result(dir)) return *r;
  const std::string who = role + " '" + dir + "'";
  if (util::file_exists(util::path_join(dir, "config.json")))
    throw std::invalid_argument(who + " is unfinished (no result.json, not a finished run yet): finish it with "
                                "`deepreduce resume " + dir + "`");
  if (arch::is_network_file(dir))
    throw std::invalid_argument(who + " is a model file, not a run: make a run of it (its weights, fine-tuned) with "
                                "`deepreduce train --model " + dir + " --init-weights " + dir +
                                " --data D --epochs 1 --out RUN` (docs/onnx.md)");
  throw std::invalid_argument(who + " is not a finished run (no result.json)" +
                              (role == "run" ? std::string()
                                             : ": train it first with `deepreduce train --out " + dir + "`"));
}

std::optional<RunResult> verified_result(const std::string& dir, arch::Network* net) {
  auto r = finished_result(dir);
  if (!r) return r;
  check_run_weights(dir, *r);
  arch::Network n = checked_network(dir, *r);  // masks.pt against its SHA-256, the ReLUs against result.json
  if (net) *net = std::move(n);
  return r;
}

TrainConfig read_config(const std::string& dir) {
  const std::string p = util::path_join(dir, "config.json");
  if (!util::file_exists(p)) throw std::runtime_error("'" + dir + "' is not a run directory (no config.json)");
  TrainConfig c = TrainConfig::from_json(read_json(p), p);
  c.out = dir;
  return c;
}

arch::Network config_network(const TrainConfig& cfg, const arch::InputSpec& input) {
  arch::Network net = arch::build_network(cfg.model, input);
  if (!cfg.masks_from.empty())
    apply_masks(net, load_masks(cfg.masks_from));
  else if (cfg.masked)
    apply_masks(net, load_run_masks(cfg.out));
  return net;
}

arch::Network run_network(const std::string& dir) { return checked_network(dir, require_finished(dir)); }

void check_run_input(const std::string& dir, const std::string& role, const arch::InputSpec& input,
                     const std::string& data) {
  const RunResult r = require_finished(dir, role);
  if (r.input != input.shape.str() || (input.classes > 0 && r.classes != input.classes))
    throw std::invalid_argument(role + " '" + dir + "' was trained for input " + r.input + " with " +
                                std::to_string(r.classes) + " classes, but " + data + " gives " + input.shape.str() +
                                (input.classes > 0 ? " with " + std::to_string(input.classes) + " classes" : "") +
                                ": give a " + role + " trained on this data");
}

void check_teacher(const std::string& dir, const arch::InputSpec& input) {
  check_run_input(dir, "teacher", input, "this run's data");
}

}  // namespace dr::train
