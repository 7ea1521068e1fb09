#include "train/config.h"

#include <sched.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "util/strings.h"

namespace dr::train {

nlohmann::json TrainConfig::to_json() const {
  return {{"model", model},     {"data", data},           {"out", out},
          {"epochs", epochs},   {"batch", batch},         {"lr", lr},
          {"momentum", momentum}, {"nesterov", nesterov}, {"wd", wd},
          {"schedule", schedule}, {"seed", seed},         {"threads", threads},
          {"device", device},   {"limit", limit},         {"workers", workers},
          {"teacher", teacher}, {"kd_T", kd_T},           {"kd_lambda", kd_lambda},
          {"init", init},       {"warmup", warmup},       {"pad", pad},
          {"flip", flip},       {"weight_init", weight_init}, {"zero_init_residual", zero_init_residual},
          {"masked", masked},   {"init_weights", init_weights}, {"data_path", data_path},
          {"precision", precision}};
}

nlohmann::json TrainConfig::result_settings() const {
  nlohmann::json j = to_json();
  for (const char* k : {"out", "threads", "workers", "device", "data_path"}) j.erase(k);
  return j;
}

std::string first_difference(const nlohmann::json& a, const std::string& a_name, const nlohmann::json& b,
                             const std::string& b_name, const nlohmann::json& b_missing_means) {
  std::vector<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys.push_back(it.key());
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) keys.push_back(it.key());
  for (const auto& k : keys) {
    const nlohmann::json va = a.value(k, nlohmann::json());
    nlohmann::json vb = b.value(k, nlohmann::json());
    if (!b.contains(k) && b_missing_means.is_object()) vb = b_missing_means.value(k, nlohmann::json());
    if (va == vb) continue;
    if (va.is_object() && vb.is_object()) {
      const std::string inner = first_difference(va, a_name, vb, b_name, b_missing_means);
      if (inner.empty()) continue;
      return k + "." + inner;
    }
    return k + ": " + va.dump() + " in " + a_name + ", " + vb.dump() + " in " + b_name;
  }
  return "";
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& source) {
  TrainConfig c;
  std::string field;  // the one being read, for the message
  // A required field, and an optional one with its default.
  auto at = [&](const char* k) -> const nlohmann::json& { return j.at(field = k); };
  auto value = [&](const char* k, auto def) { return j.value(field = k, def); };
  try {
    if (!j.is_object()) throw std::runtime_error("'" + source + "' is not a training config (not a JSON object)");
    c.model = at("model").get<std::string>();
    c.data = at("data").get<std::string>();
    c.out = value("out", std::string());
    c.epochs = at("epochs").get<int64_t>();
    c.batch = at("batch").get<int64_t>();
    c.lr = at("lr").get<double>();
    c.momentum = value("momentum", c.momentum);
    c.nesterov = value("nesterov", c.nesterov);
    c.wd = value("wd", c.wd);
    c.schedule = value("schedule", c.schedule);
    c.seed = value("seed", c.seed);
    c.threads = value("threads", c.threads);
    c.device = value("device", c.device);
    c.limit = value("limit", c.limit);
    c.workers = value("workers", c.workers);
    c.teacher = value("teacher", c.teacher);
    c.kd_T = value("kd_T", c.kd_T);
    c.kd_lambda = value("kd_lambda", c.kd_lambda);
    c.init = value("init", c.init);
    // Settings added later: a config without them was run with these values.
    c.warmup = value("warmup", 0.0);
    c.pad = value("pad", 4);
    c.flip = value("flip", true);
    c.weight_init = value("weight_init", std::string("torch"));
    c.zero_init_residual = value("zero_init_residual", false);
    c.masked = value("masked", false);
    c.init_weights = value("init_weights", std::string());
    c.data_path = value("data_path", std::string("auto"));
    c.precision = value("precision", std::string("fp32"));
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.type_error.302] type must be number, but is string": the part after the id.
    std::string what = e.what();
    if (const size_t id = what.find("] "); what.rfind("[json.exception.", 0) == 0 && id != std::string::npos)
      what = what.substr(id + 2);
    throw std::runtime_error("'" + source + "': bad training config: field '" + field + "': " + what);
  }
  return c;
}

namespace {

[[noreturn]] void refuse(const std::string& m) { throw std::invalid_argument(m); }

void check_choice(const char* option, const std::string& v, const std::vector<std::string>& accepted) {
  if (std::find(accepted.begin(), accepted.end(), v) == accepted.end())
    refuse(std::string(option) + " '" + v + "' is not accepted (accepted: " + util::join(accepted) + ")");
}

}  // namespace

// NaN fails every comparison.
void check_number(const std::string& option, double v, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok) {
    std::ostringstream m;
    m << option << " must be a finite number in " << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]")
      << " (got " << v << ")";
    refuse(m.str());
  }
}

void check_integer(const std::string& option, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    refuse(option + " must be in " + std::to_string(lo) + ".." + std::to_string(hi) + " (got " +
           std::to_string(v) + ")");
}

int max_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void check_threads(const char* option, int64_t threads) {
  const int max = max_threads();
  if (threads < 0 || threads > max)
    refuse(std::string(option) + " must be in 0.." + std::to_string(max) + " (0 = every core; this process may use " +
           std::to_string(max) + " cores; got " + std::to_string(threads) + ")");
}

// Every setting, named in the error, before any data is read or any file written.
void TrainConfig::validate() const {
  check_integer("--epochs", epochs, 1, kMaxEpochs);
  check_integer("--batch", batch, 1, kMaxBatch);
  check_number("--lr", lr, 0, 100, true);
  check_number("--momentum", momentum, 0, 1, false, true);
  // LibTorch's SGD refuses Nesterov without momentum, but only once the data is read.
  if (nesterov && momentum == 0)
    refuse("--momentum 0 needs --no-nesterov (Nesterov momentum needs a momentum in (0, 1))");
  check_number("--wd", wd, 0, 1);
  check_choice("--schedule", schedule, {"step", "cosine"});
  check_number("--warmup", warmup, 0, static_cast<double>(epochs), false, true);  // below --epochs
  check_integer("--pad", pad, -1, kMaxPad);
  check_choice("--weight-init", weight_init, {"torch", "kaiming"});
  check_choice("--device", device, {"cpu", "cuda", "auto"});
  check_threads("--threads", threads);
  check_integer("--limit", limit, 0, kMaxLimit);
  check_integer("--workers", workers, 0, kMaxWorkers);
  check_choice("--data-path", data_path, {"auto", "device", "host"});
  check_choice("--precision", precision, {"fp32", "bf16", "fp16"});
  if (seed > static_cast<uint64_t>(INT64_MAX))
    refuse("--seed must be in 0.." + std::to_string(INT64_MAX) + " (got " + std::to_string(seed) + ": a negative number?)");
  check_number("--kd-T", kd_T, 0.01, 1000);
  check_number("--kd-lambda", kd_lambda, 0, 1000);
  if (!init.empty()) check_choice("--init", init, {"teacher"});
  if (init == "teacher" && teacher.empty()) refuse("--init teacher needs --teacher DIR");
  if (!init.empty() && !init_weights.empty()) refuse("give --init teacher or starting weights, not both");
}

double lr_at(const TrainConfig& c, double epoch) {
  const double progress = epoch / static_cast<double>(c.epochs);
  // Linear warm-up scales the schedule's rate during the first epochs.
  const double warm = c.warmup > 0 && epoch < c.warmup ? epoch / c.warmup : 1.0;
  if (c.schedule == "cosine") return warm * 0.5 * c.lr * (1.0 + std::cos(M_PI * progress));
  double lr = c.lr;
  if (progress >= 0.5) lr *= 0.1;
  if (progress >= 0.75) lr *= 0.1;
  return warm * lr;
}

}  // namespace dr::train
