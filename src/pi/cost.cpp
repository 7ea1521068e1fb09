#include "pi/cost.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "util/fs.h"
#include "util/strings.h"

#ifndef DEEPREDUCE_DATA_DIR
#error "DEEPREDUCE_DATA_DIR must be defined (CMakeLists.txt sets it)"
#endif

namespace dr::pi {

namespace {

using nlohmann::json;

struct Loader {
  std::string path;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("PI cost file '" + path + "': " + what);
  }

  const json& field(const json& obj, const char* key, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(where + "missing field '" + key + "'");
    return *it;
  }

  std::string string_field(const json& obj, const char* key, const std::string& where) const {
    const json& v = field(obj, key, where);
    if (!v.is_string()) fail(where + "field '" + key + "' must be a string, got " + v.type_name());
    std::string s = v.get<std::string>();
    if (s.empty()) fail(where + "field '" + key + "' is empty");
    return s;
  }

  double positive_number(const json& v, const char* key, const std::string& where, bool allow_zero) const {
    if (!v.is_number()) fail(where + "field '" + key + "' must be a number, got " + v.type_name());
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < 0 || (!allow_zero && d == 0))
      fail(where + "field '" + key + "' must be " + (allow_zero ? "non-negative" : "positive") + ", got " +
           v.dump());
    return d;
  }

  int positive_int(const json& v, const char* key, const std::string& where) const {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > 1 << 20)
      fail(where + "field '" + key + "' must be a positive integer, got " + v.dump());
    return static_cast<int>(v.get<int64_t>());
  }
};

}  // namespace

std::string data_file_path(const char* env, const char* file) {
  const char* given = std::getenv(env);
  if (given && *given) return given;
  return std::string(DEEPREDUCE_DATA_DIR) + "/" + file;
}

std::string default_cost_model_path() { return data_file_path("DEEPREDUCE_PI_COSTS", "pi_protocols.json"); }

CostModel load_cost_model(const std::string& path_in) {
  Loader L{path_in.empty() ? default_cost_model_path() : path_in};
  if (!util::file_exists(L.path)) {
    const bool from_env = path_in.empty() && std::getenv("DEEPREDUCE_PI_COSTS") && *std::getenv("DEEPREDUCE_PI_COSTS");
    L.fail(std::string("no such file") + (from_env ? " (named by DEEPREDUCE_PI_COSTS)" : ""));
  }
  std::string text;
  try {
    text = util::read_file(L.path);
  } catch (const std::exception& e) {
    L.fail(std::string("cannot read: ") + e.what());
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    L.fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) L.fail(std::string("expected a JSON object at the top, got ") + j.type_name());

  CostModel m;
  m.path = L.path;
  m.ring_bits = L.positive_int(L.field(j, "ring_bits", ""), "ring_bits", "");
  const json& protos = L.field(j, "protocols", "");
  if (!protos.is_array() || protos.empty()) L.fail("'protocols' must be a non-empty array");
  std::set<std::string> ids;
  for (size_t i = 0; i < protos.size(); ++i) {
    const json& p = protos[i];
    std::string where = "protocol " + std::to_string(i + 1) + ": ";
    if (!p.is_object()) L.fail(where + "expected an object, got " + p.type_name());
    Protocol out;
    out.id = L.string_field(p, "id", where);
    where = "protocol " + std::to_string(i + 1) + " ('" + out.id + "'): ";
    if (!ids.insert(out.id).second) L.fail(where + "duplicate id");
    out.name = L.string_field(p, "name", where);
    out.source = L.string_field(p, "source", where);
    out.bits_per_relu = L.positive_number(L.field(p, "bits_per_relu", where), "bits_per_relu", where, false);
    if (auto it = p.find("us_per_relu"); it != p.end() && !it->is_null())
      out.us_per_relu = L.positive_number(*it, "us_per_relu", where, true);
    if (auto it = p.find("rounds"); it != p.end() && !it->is_null())
      out.rounds = L.positive_int(*it, "rounds", where);
    m.protocols.push_back(std::move(out));
  }
  return m;
}

namespace {

std::string accepted_ids(const CostModel& model) {
  std::string s;
  for (const auto& p : model.protocols) s += (s.empty() ? "" : ", ") + p.id;
  return s;
}

// Without any whitespace, lower case: " GC, Cheetah" -> "gc,cheetah".
std::string trim_lower(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (!std::isspace(c)) out += static_cast<char>(c);
  return util::lower(out);
}

}  // namespace

const Protocol& find_protocol(const CostModel& model, const std::string& id) {
  const std::string key = trim_lower(id);
  for (const auto& p : model.protocols)
    if (p.id == key) return p;
  throw std::invalid_argument("unknown PI protocol '" + id + "' (accepted: " + accepted_ids(model) + ", or all)");
}

std::vector<const Protocol*> select_protocols(const CostModel& model, const std::string& which) {
  const std::string w = trim_lower(which);
  std::vector<const Protocol*> out;
  if (w == "all") {
    for (const auto& p : model.protocols) out.push_back(&p);
    return out;
  }
  size_t start = 0;
  while (start <= w.size()) {
    const size_t comma = w.find(',', start);
    const std::string item = w.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      const Protocol* p = &find_protocol(model, item);
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.empty())
    throw std::invalid_argument("no PI protocol selected in '" + which + "' (accepted: " + accepted_ids(model) +
                                ", or all)");
  return out;
}

const ProtocolCost* NetworkCost::find(const std::string& id) const {
  for (const auto& p : per_protocol)
    if (p.protocol == id) return &p;
  return nullptr;
}

int64_t linear_input_elements(const dr::arch::Network& net) {
  int64_t n = 0;
  for (const auto* l : net.layers())
    if (l->op == dr::arch::Op::Conv || l->op == dr::arch::Op::Linear) n += l->in.numel();
  return n;
}

NetworkCost estimate(int64_t relus, int64_t linear_inputs, const CostModel& model,
                     const std::vector<const Protocol*>& protocols) {
  if (relus < 0 || linear_inputs < 0)
    throw std::invalid_argument("PI cost estimate: negative ReLU or element count");
  NetworkCost c;
  c.relus = relus;
  c.linear_input_elements = linear_inputs;
  c.linear_share_bytes = static_cast<double>(linear_inputs) * model.ring_bits / 8.0;
  for (const Protocol* p : protocols) {
    if (!p) throw std::invalid_argument("PI cost estimate: null protocol");
    ProtocolCost pc;
    pc.protocol = p->id;
    pc.relu_bytes = static_cast<double>(relus) * p->bits_per_relu / 8.0;
    if (p->us_per_relu) pc.relu_seconds = static_cast<double>(relus) * *p->us_per_relu * 1e-6;
    c.per_protocol.push_back(std::move(pc));
  }
  return c;
}

NetworkCost estimate(const dr::arch::Network& net, const CostModel& model,
                     const std::vector<const Protocol*>& protocols) {
  const dr::arch::Totals t = net.totals();
  NetworkCost c = estimate(t.relus, linear_input_elements(net), model, protocols);
  c.polys = t.polys;
  c.poly_bytes = static_cast<double>(t.polys) * 2 * 2 * model.ring_bits / 8.0;
  return c;
}

}  // namespace dr::pi
