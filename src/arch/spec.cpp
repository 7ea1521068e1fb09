// The model-spec grammar.
#include "arch/spec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "util/strings.h"

namespace dr::arch {

namespace {

using util::join;
using util::split;

std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
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

// Checks a stage list against the family, sorts it in stage order, dedupes.
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
    idx.insert(it - fam.stages.begin());
  }
  std::vector<std::string> out;
  for (size_t i : idx) out.push_back(fam.stages[i]);
  return out;
}

}  // namespace

ModelSpec parse_spec(const std::string& text) {
  if (text.empty())
    throw SpecError("empty model spec (expected family[:key[=value]]..., e.g. resnet18:cull=S1:thin)");
  const auto parts = split(text, ':');
  ModelSpec spec;
  spec.family = parts[0];
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
    static const std::set<std::string> known = {"alpha", "rho", "blocks", "cull", "keep", "thin"};
    if (!known.count(key))
      throw SpecError("model spec '" + text + "': unknown key '" + key +
                      "' (accepted: alpha, rho, blocks, cull, keep, thin)");
    if (key != "thin" && !has_value)
      throw SpecError("model spec '" + text + "': key '" + key + "' needs a value (" + key + "=...)");
    if (key == "alpha") {
      spec.alpha = parse_number(key, value, text);
      if (spec.alpha <= 0)
        throw SpecError("model spec '" + text + "': alpha must be > 0 (got " + value + ")");
    } else if (key == "rho") {
      spec.rho = parse_number(key, value, text);
      const double inv = 1.0 / spec.rho;
      if (spec.rho <= 0 || spec.rho > 1 || std::fabs(inv - std::round(inv)) > 1e-6)
        throw SpecError("model spec '" + text + "': rho must be 1/k for an integer stride k >= 1 "
                        "(e.g. 1, 0.5, 0.25); got " + value);
    } else if (key == "blocks") {
      if (fam.default_blocks.empty())
        throw SpecError("model spec '" + text + "': blocks= is accepted by ResNet families only, not " +
                        fam.name);
      for (const auto& b : split(value, ',')) {
        int n = 0;
        size_t used = 0;
        try {
          n = std::stoi(b, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != b.size() || b.empty() || n < 1)
          throw SpecError("model spec '" + text + "': blocks needs positive integers, got '" + b + "'");
        spec.blocks.push_back(n);
      }
      if (spec.blocks.size() != fam.stages.size())
        throw SpecError("model spec '" + text + "': blocks needs " + std::to_string(fam.stages.size()) +
                        " numbers, one per stage of " + fam.name + " (" + join(fam.stages) + ")");
    } else if (key == "cull") {
      spec.cull = parse_stages(key, value, fam, text);
    } else if (key == "keep") {
      spec.keep = parse_stages(key, value, fam, text);
    } else if (key == "thin") {
      if (fam.thin_policies.empty())
        throw SpecError("model spec '" + text + "': " + fam.name +
                        " has one ReLU per block, so thinning is not defined for it");
      if (has_value && !fam.policy(value))
        throw SpecError("model spec '" + text + "': unknown thinning policy '" + value + "' for " + fam.name +
                        " (accepted: " + join(fam.policy_names()) + ")");
      spec.thin = has_value ? value : fam.thin_policies.front().name;
    } else {
      throw SpecError("model spec '" + text + "': unknown key '" + key +
                      "' (accepted: alpha, rho, blocks, cull, keep, thin)");
    }
  }
  if (!spec.cull.empty() && !spec.keep.empty())
    throw SpecError("model spec '" + text + "': give cull= or keep=, not both");
  return spec;
}

std::string ModelSpec::canonical() const {
  std::string s = family;
  if (alpha != 1.0) s += ":alpha=" + fmt_num(alpha);
  if (rho != 1.0) s += ":rho=" + fmt_num(rho);
  if (!blocks.empty()) {
    std::vector<std::string> b;
    for (int n : blocks) b.push_back(std::to_string(n));
    s += ":blocks=" + join(b, ",");
  }
  if (!cull.empty()) s += ":cull=" + join(cull, ",");
  if (!keep.empty()) s += ":keep=" + join(keep, ",");
  if (thin) s += ":thin=" + *thin;
  return s;
}

Shape parse_shape(const std::string& text) {
  const auto p = split(text, 'x');
  Shape s;
  bool ok = p.size() == 3;
  if (ok) {
    try {
      size_t u0, u1, u2;
      s = {std::stoll(p[0], &u0), std::stoll(p[1], &u1), std::stoll(p[2], &u2)};
      ok = u0 == p[0].size() && u1 == p[1].size() && u2 == p[2].size() && s.c > 0 && s.h > 0 &&
           s.w > 0;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok) throw SpecError("input shape '" + text + "' is not CxHxW with positive integers (e.g. 3x32x32)");
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
