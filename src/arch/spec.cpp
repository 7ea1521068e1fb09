// The model-spec grammar.
#include "arch/spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "arch/builder.h"
#include "util/strings.h"

namespace dr::arch {

namespace {

using util::join;
using util::split;

// The shortest %g form that reads back as the same double: "0.5", but
// "0.3333333333" stays exact (a 6-digit %g would turn rho=1/3 into a rho
// the parser refuses).
std::string fmt_num(double v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

double parse_number(const std::string& key, const std::string& value, const std::string& spec) {
  try {
    size_t used = 0;
    double v = std::stod(value, &used);
    if (used == value.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw SpecError("model spec '" + spec + "': " + key + "='" + value + "' is not a number");
}

// Checks a stage list against the family (each stage once, as a key is) and
// sorts it in stage order.
std::vector<std::string> parse_stages(const std::string& key, const std::string& value, const Family& fam,
                                      const std::string& spec) {
  if (value.empty())
    throw SpecError("model spec '" + spec + "': " + key + " needs stages, e.g. " + key + "=S1,S2 (" + fam.name +
                    " has " + join(fam.stages) + ")");
  std::set<size_t> idx;
  for (const auto& s : split(value, ',')) {
    auto it = std::find(fam.stages.begin(), fam.stages.end(), s);
    if (it == fam.stages.end())
      throw SpecError("model spec '" + spec + "': unknown stage '" + s + "' in " + key + " (" + fam.name + " has " +
                      join(fam.stages) + ")");
    if (!idx.insert(it - fam.stages.begin()).second)
      throw SpecError("model spec '" + spec + "': stage '" + s + "' given twice in " + key + " (name each stage once)");
  }
  std::vector<std::string> out;
  for (size_t i : idx) out.push_back(fam.stages[i]);
  return out;
}

void check_alpha(double alpha, const std::string& value, const std::string& spec) {
  if (!(alpha > 0) || !std::isfinite(alpha))
    throw SpecError("model spec '" + spec + "': alpha must be > 0 (got " + value + ")");
}

void check_rho(double rho, const std::string& value, const std::string& spec) {
  const std::string problem = rho_problem(rho, value);
  if (!problem.empty()) throw SpecError("model spec '" + spec + "': " + problem);
}

// One stage's block count: 1..limits::kMaxBlocksPerStage.
void check_block_count(int64_t n, const std::string& value, const std::string& stage, const std::string& spec) {
  if (n < 1) throw SpecError("model spec '" + spec + "': blocks needs positive integers, got '" + value + "'");
  if (n > limits::kMaxBlocksPerStage)
    throw SpecError("model spec '" + spec + "': blocks=" + value + " for stage " + stage + " is too large (at most " +
                    std::to_string(limits::kMaxBlocksPerStage) + " blocks per stage)");
}

// "2,2,2,2" -> one count per stage of the family, each checked.
std::vector<int> parse_blocks(const std::string& value, const Family& fam, const std::string& spec) {
  if (fam.default_blocks.empty())
    throw SpecError("model spec '" + spec + "': blocks= is accepted by the families with a block count per stage (" +
                    join(families_with_blocks()) + "), not " + fam.name);
  const auto parts = split(value, ',');
  if (parts.size() != fam.stages.size())
    throw SpecError("model spec '" + spec + "': blocks needs " + std::to_string(fam.stages.size()) +
                    " numbers, one per stage of " + fam.name + " (" + join(fam.stages) + ")");
  std::vector<int> blocks;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& b = parts[i];
    long long n = 0;
    size_t used = 0;
    try {
      n = std::stoll(b, &used);
    } catch (const std::out_of_range&) {
      // More digits than any int64: too large, unless it is negative.
      n = b.find('-') == std::string::npos ? limits::kMaxBlocksPerStage + 1 : 0;
      used = b.size();
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != b.size() || b.empty())
      throw SpecError("model spec '" + spec + "': blocks needs positive integers, got '" + b + "'");
    check_block_count(n, b, fam.stages[i], spec);
    blocks.push_back(static_cast<int>(n));
  }
  return blocks;
}

// The spec's keys, one table for the parser, its messages and canonical(),
// in the order canonical() writes them. `parse` sets the key's field of the
// spec from its value (has_value: "key=value" rather than "key"); `value` is
// the canonical value of the field, nullopt when it is the default (left out).
struct SpecKey {
  const char* name;
  bool value_optional;
  void (*parse)(ModelSpec& spec, const std::string& value, bool has_value, const Family& fam, const std::string& text);
  std::optional<std::string> (*value)(const ModelSpec& spec);
};

std::optional<std::string> joined(const std::vector<std::string>& v) {
  return v.empty() ? std::nullopt : std::optional<std::string>(join(v, ","));
}

const SpecKey kSpecKeys[] = {
    {"alpha", false,
     [](ModelSpec& s, const std::string& v, bool, const Family&, const std::string& text) {
       s.alpha = parse_number("alpha", v, text);
       check_alpha(s.alpha, v, text);
     },
     [](const ModelSpec& s) { return s.alpha != 1.0 ? std::optional<std::string>(fmt_num(s.alpha)) : std::nullopt; }},
    {"rho", false,
     [](ModelSpec& s, const std::string& v, bool, const Family&, const std::string& text) {
       s.rho = parse_number("rho", v, text);
       check_rho(s.rho, v, text);
     },
     [](const ModelSpec& s) { return s.rho != 1.0 ? std::optional<std::string>(fmt_num(s.rho)) : std::nullopt; }},
    {"blocks", false,
     [](ModelSpec& s, const std::string& v, bool, const Family& fam, const std::string& text) {
       s.blocks = parse_blocks(v, fam, text);
     },
     [](const ModelSpec& s) {
       std::vector<std::string> b;
       for (int n : s.blocks) b.push_back(std::to_string(n));
       return joined(b);
     }},
    {"cull", false,
     [](ModelSpec& s, const std::string& v, bool, const Family& fam, const std::string& text) {
       s.cull = parse_stages("cull", v, fam, text);
     },
     [](const ModelSpec& s) { return joined(s.cull); }},
    {"keep", false,
     [](ModelSpec& s, const std::string& v, bool, const Family& fam, const std::string& text) {
       s.keep = parse_stages("keep", v, fam, text);
     },
     [](const ModelSpec& s) { return joined(s.keep); }},
    {"thin", true,
     [](ModelSpec& s, const std::string& v, bool has_value, const Family& fam, const std::string& text) {
       if (fam.thin_policies.empty())
         throw SpecError("model spec '" + text + "': " + fam.name +
                         " has one ReLU per block, so thinning is not defined for it");
       if (has_value && !fam.policy(v))
         throw SpecError("model spec '" + text + "': unknown thinning policy '" + v + "' for " + fam.name +
                         " (accepted: " + join(fam.policy_names()) + ")");
       s.thin = has_value ? v : fam.thin_policies.front().name;
     },
     [](const ModelSpec& s) { return s.thin; }},
};

const SpecKey* find_key(const std::string& name) {
  for (const SpecKey& k : kSpecKeys)
    if (name == k.name) return &k;
  return nullptr;
}

std::string key_names() {
  std::vector<std::string> names;
  for (const SpecKey& k : kSpecKeys) names.push_back(k.name);
  return join(names);
}

}  // namespace

void validate_spec(const ModelSpec& s) {
  const Family& fam = find_family(s.family);
  const std::string text = s.canonical();
  check_alpha(s.alpha, fmt_num(s.alpha), text);
  check_rho(s.rho, fmt_num(s.rho), text);
  if (file_network(fam) && (s.alpha != 1.0 || s.rho != 1.0 || !s.blocks.empty()))
    throw SpecError("model spec '" + text + "': alpha, rho and blocks do not apply to a model file (its widths, "
                    "resolution and blocks are the file's)");
  if (s.blocks.empty()) return;
  if (fam.default_blocks.empty() || s.blocks.size() != fam.stages.size())
    throw SpecError("model spec '" + text + "': blocks needs " + std::to_string(fam.stages.size()) +
                    " numbers, one per stage of " + fam.name + " (" + join(fam.stages) + ")");
  for (size_t i = 0; i < s.blocks.size(); ++i)
    check_block_count(s.blocks[i], std::to_string(s.blocks[i]), fam.stages[i], text);
}

void validate_input(const InputSpec& in, const std::string& where) {
  const Shape& s = in.shape;
  if (s.c < 1 || s.h < 1 || s.w < 1 || in.classes < 1)
    throw SpecError(where + " with " + std::to_string(in.classes) +
                    " classes: need a positive shape and at least one class");
  const std::pair<const char*, int64_t> dims[] = {{"channels", s.c}, {"height", s.h}, {"width", s.w}};
  for (const auto& [name, v] : dims) {
    const int64_t max = name[0] == 'c' ? limits::kMaxInputChannels : limits::kMaxInputSide;
    if (v > max)
      throw SpecError(where + ": " + name + " " + std::to_string(v) + " is too large (at most " +
                      std::to_string(max) + ")");
  }
  if (in.classes > limits::kMaxClasses)
    throw SpecError(where + ": " + std::to_string(in.classes) + " classes is too many (at most " +
                    std::to_string(limits::kMaxClasses) + ")");
}

ModelSpec parse_spec(const std::string& text) {
  if (text.empty())
    throw SpecError("empty model spec (expected family[:key[=value]]..., e.g. resnet18:cull=S1:thin)");
  const auto parts = split(text, ':');
  ModelSpec spec;
  // A model file is named by its absolute path, so a run's spec finds it
  // from anywhere.
  spec.family = is_network_file(parts[0]) ? std::filesystem::absolute(parts[0]).lexically_normal().string() : parts[0];
  const Family& fam = find_family(spec.family);
  std::set<std::string> seen;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty()) throw SpecError("model spec '" + text + "': empty part between ':'");
    const auto eq = part.find('=');
    const std::string key = part.substr(0, eq);
    const bool has_value = eq != std::string::npos;
    const std::string value = has_value ? part.substr(eq + 1) : "";
    if (!seen.insert(key).second)
      throw SpecError("model spec '" + text + "': key '" + key + "' given twice");
    const SpecKey* k = find_key(key);
    if (!k) throw SpecError("model spec '" + text + "': unknown key '" + key + "' (accepted: " + key_names() + ")");
    if (!k->value_optional && !has_value)
      throw SpecError("model spec '" + text + "': key '" + key + "' needs a value (" + key + "=...)");
    if (file_network(fam) && (key == "alpha" || key == "rho" || key == "blocks"))
      throw SpecError("model spec '" + text + "': " + key + "= does not apply to a model file (its widths, " +
                      "resolution and blocks are the file's; accepted: cull=, keep=, thin)");
    k->parse(spec, value, has_value, fam, text);
  }
  if (!spec.cull.empty() && !spec.keep.empty())
    throw SpecError("model spec '" + text + "': give cull= or keep=, not both");
  return spec;
}

std::string ModelSpec::canonical() const {
  std::string s = family;
  for (const SpecKey& k : kSpecKeys)
    if (const auto v = k.value(*this)) s += std::string(":") + k.name + "=" + *v;
  return s;
}

Shape parse_shape(const std::string& text) {
  const auto p = split(text, 'x');
  const std::string where = "input shape '" + text + "'";
  const std::string bad = where + " is not CxHxW with positive integers (e.g. 3x32x32)";
  if (p.size() != 3) throw SpecError(bad);
  const char* names[] = {"channels", "height", "width"};
  int64_t dims[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i) {
    size_t used = 0;
    try {
      dims[i] = std::stoll(p[i], &used);
    } catch (const std::out_of_range&) {
      if (p[i].find('-') != std::string::npos) throw SpecError(bad);
      throw SpecError(where + ": " + names[i] + " " + p[i] + " is too large (at most " +
                      std::to_string(i == 0 ? limits::kMaxInputChannels : limits::kMaxInputSide) + ")");
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != p[i].size() || dims[i] < 1) throw SpecError(bad);
  }
  const Shape s{dims[0], dims[1], dims[2]};
  validate_input({s, 1}, where);
  return s;
}

Network build_network(const std::string& spec, const InputSpec& input) {
  return build_network(parse_spec(spec), input);
}

ModelSpec parse_family_spec(const std::string& text, const std::string& option) {
  ModelSpec s = parse_spec(text);
  if (!s.is_family_only())
    throw SpecError(option + " '" + text +
                    "': give the family spec (alpha, rho, blocks allowed) without cull, keep or thin; "
                    "the pipeline chooses those");
  return s;
}

}  // namespace dr::arch
