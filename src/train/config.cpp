#include "train/config.h"

#include <sched.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <variant>

#include "train/settings.h"
#include "util/strings.h"

namespace dr::train {

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Setting& f : train_settings()) std::visit([&](auto m) { j[f.key] = this->*m; }, f.member);
  return j;
}

nlohmann::json TrainConfig::result_settings() const {
  nlohmann::json j = to_json();
  for (const Setting& f : train_settings())
    if (!f.result) j.erase(f.key);
  return j;
}

namespace {

// Two spellings of one existing file or directory ("runs/t" and
// "/work/runs/t", the teacher of a search resumed from elsewhere) are one setting.
bool same_path(const nlohmann::json& a, const nlohmann::json& b) {
  if (!a.is_string() || !b.is_string() || a.get<std::string>().empty() || b.get<std::string>().empty()) return false;
  std::error_code ec;
  return std::filesystem::equivalent(a.get<std::string>(), b.get<std::string>(), ec) && !ec;
}

}  // namespace

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
    if (va == vb || same_path(va, vb)) continue;
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
  try {
    if (!j.is_object()) throw std::runtime_error("'" + source + "' is not a training config (not a JSON object)");
    for (const Setting& f : train_settings()) {
      field = f.key;
      std::visit(
          [&](auto m) {
            using T = std::decay_t<decltype(c.*m)>;
            if (f.required)
              c.*m = j.at(f.key).get<T>();
            else  // a config recorded before the setting existed was run with `before`
              c.*m = j.value(f.key, f.before.is_null() ? T(c.*m) : f.before.get<T>());
          },
          f.member);
    }
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

}  // namespace

void check_choice(const std::string& option, const std::string& v, const std::vector<std::string>& accepted) {
  if (std::find(accepted.begin(), accepted.end(), v) == accepted.end())
    refuse(option + " '" + v + "' is not accepted (accepted: " + util::join(accepted) + ")");
}

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

// Every setting, named in the error, before any data is read or any file
// written: the checks of the settings table, in its order.
void TrainConfig::validate() const {
  for (const Setting& f : train_settings())
    if (f.check) f.check(*this);
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
