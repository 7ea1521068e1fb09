#include "pi/private_cost.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "mpc/cost.h"
#include "mpc/gate.h"
#include "pi/cost.h"
#include "report/format.h"
#include "util/fs.h"
#include "util/strings.h"

namespace dr::pi {

const Link kLan{"lan", "LAN", "LAN (1 Gb/s, 0.5 ms RTT)", 1e9, 0.5e-3};
const Link kWan{"wan", "WAN", "WAN (100 Mb/s, 40 ms RTT)", 100e6, 40e-3};

const Link& find_link(const std::string& name, const std::string& flag) {
  if (name == "lan") return kLan;
  if (name == "wan") return kWan;
  throw std::invalid_argument(flag + " '" + name + "' is not accepted (accepted: lan, wan)");
}

TimeModel load_time_model(const std::string& given) {
  const std::string path = given.empty() ? data_file_path("DEEPREDUCE_PI_TIME_MODEL", "pi_time_model.json") : given;
  const auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("PI time model '" + path + "': " + what +
                              " (bench/pi_time_model.sh writes one: {\"seconds\": {\"base\", \"per_relu\", "
                              "\"per_poly\", \"per_mac\", \"per_round\"}, \"provenance\": {...}})");
  };
  if (!util::file_exists(path)) throw fail("no such file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(util::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("seconds") || !j["seconds"].is_object()) throw fail("no \"seconds\" object");
  TimeModel m;
  m.path = path;
  m.provenance = j.value("provenance", nlohmann::json::object());
  const std::pair<const char*, double*> fields[] = {{"base", &m.base_s},       {"per_relu", &m.per_relu_s},
                                                    {"per_poly", &m.per_poly_s}, {"per_mac", &m.per_mac_s},
                                                    {"per_round", &m.per_round_s}};
  for (const auto& [key, dst] : fields) {
    const nlohmann::json& s = j["seconds"];
    if (!s.contains(key) || !s[key].is_number()) throw fail(std::string("\"seconds\".\"") + key + "\" must be a number");
    *dst = s[key].get<double>();
    if (!std::isfinite(*dst) || *dst < 0)
      throw fail(std::string("\"seconds\".\"") + key + "\" must be finite and >= 0, got " + s[key].dump());
  }
  return m;
}

double link_seconds(const Link& l, double rounds, double larger_direction_bytes) {
  return rounds * l.rtt_s + larger_direction_bytes * 8 / l.bits_per_s;
}

double PrivateCost::seconds(const Link& l, int64_t batch) const {
  const double b = static_cast<double>(std::max<int64_t>(1, batch));
  return compute_s +
         link_seconds(l, static_cast<double>(rounds), b * static_cast<double>(std::max(client_sent, server_sent))) / b;
}

namespace {

double compute_of(const TimeModel& m, int64_t relus, int64_t polys, int64_t macs, int64_t rounds) {
  return m.base_s + m.per_relu_s * static_cast<double>(relus) + m.per_poly_s * static_cast<double>(polys) +
         m.per_mac_s * static_cast<double>(macs) + m.per_round_s * static_cast<double>(rounds);
}

const mpc::GateTotal* gate_total(const mpc::ExpectedCost& e, const char* gate) {
  for (const auto& g : e.gates)
    if (g.gate == gate) return &g;
  return nullptr;
}

}  // namespace

PrivateCost private_cost(const arch::Network& net, const TimeModel& model, mpc::ReluGateChoice relu_gate) {
  const mpc::ExpectedCost e = mpc::expected_cost(mpc::compile_program(net, mpc::ProgramDetail::Counts, relu_gate));
  PrivateCost c;
  c.relus = e.live_relus;
  const mpc::GateTotal* poly = gate_total(e, "poly");
  c.polys = poly ? poly->elements : 0;
  c.macs = net.totals().flops;
  c.online_bytes = e.online_bytes;
  c.client_sent = e.client_sent;
  c.server_sent = e.server_sent;
  c.rounds = e.rounds;
  c.key_bytes = std::max(e.server_key_bytes, e.client_key_bytes);
  c.compute_s = compute_of(model, c.relus, c.polys, c.macs, c.rounds);
  return c;
}

SearchCost search_cost(const arch::Network& start, arch::SiteOp dropped, const TimeModel& model,
                       mpc::ReluGateChoice relu_gate) {
  const mpc::ExpectedCost e = mpc::expected_cost(mpc::compile_program(start, mpc::ProgramDetail::Counts, relu_gate));
  const mpc::GateTotal* relu = gate_total(e, "relu");
  const int64_t n = relu ? relu->elements : 0, sites = relu ? relu->steps : 0;
  // One element's words each way: every party sends them (mpc/cost.h). The
  // ReLU gate's are the start's mean per ReLU (one word for the one-round
  // gate; the two-round gate's packed bits add about 1/32), the polynomial
  // gate's one word.
  const double relu_words = n > 0 ? static_cast<double>(relu->bytes) / 16.0 / static_cast<double>(n) : 1.0;
  const bool poly = dropped == arch::SiteOp::Poly;
  const int64_t drop_words = poly ? mpc::gate_of(mpc::GateKind::Poly).words_sent(1) : 0;
  SearchCost c;
  c.relus = n;
  PrivateCost& z = c.at_zero;
  z.relus = 0;
  z.polys = poly ? n : 0;
  z.macs = start.totals().flops;
  // Every element dropped: the ReLU gate's words become the dropped element's.
  const int64_t relu_bytes = relu ? relu->bytes / 2 : 0;  // each party's
  z.client_sent = e.client_sent - relu_bytes + n * 8 * drop_words;
  z.server_sent = e.server_sent - relu_bytes + n * 8 * drop_words;
  z.online_bytes = z.client_sent + z.server_sent;
  // Keys: a gate's key per element, the same size for both parties.
  const int64_t relu_key = static_cast<int64_t>(mpc::gate_of(mpc::GateKind::Relu, relu_gate).key_bytes());
  const int64_t drop_key = poly ? static_cast<int64_t>(mpc::gate_of(mpc::GateKind::Poly).key_bytes()) : 0;
  z.key_bytes = std::max(e.server_key_bytes, e.client_key_bytes) - n * (relu_key - drop_key);
  c.per_relu_key = static_cast<double>(relu_key - drop_key);
  // The plan's rounds: every site keeps a ReLU; a polynomial search's sites
  // also keep polynomial elements, a second gate step each, whose shares
  // open with the ReLUs' (mpc::polys_open_with_relus) or take rounds of their own.
  const bool own_rounds = poly && !mpc::polys_open_with_relus();
  z.rounds = e.rounds + (own_rounds ? sites * mpc::gate_of(mpc::GateKind::Poly).rounds() : 0);
  z.compute_s = compute_of(model, 0, z.polys, z.macs, z.rounds);
  c.per_relu_bytes = 16.0 * (relu_words - static_cast<double>(drop_words));
  c.per_relu_compute = model.per_relu_s - (poly ? model.per_poly_s : 0.0);
  return c;
}

PrivateCost cost_at(const SearchCost& c, int64_t relus) {
  PrivateCost p = c.at_zero;
  const double r = static_cast<double>(relus);
  p.relus = relus;
  p.polys = p.polys > 0 ? c.relus - relus : 0;
  p.client_sent += std::llround(r * c.per_relu_bytes / 2);
  p.server_sent += std::llround(r * c.per_relu_bytes / 2);
  p.online_bytes = p.client_sent + p.server_sent;
  p.key_bytes += std::llround(r * c.per_relu_key);
  p.compute_s += r * c.per_relu_compute;
  return p;
}

int64_t relus_within(const SearchCost& c, const CostBudget& budget) {
  const auto fits = [&](int64_t r) { return budget.of(cost_at(c, r)) <= budget.value; };
  if (fits(c.relus)) return c.relus;
  if (!fits(0)) return -1;
  int64_t lo = 0, hi = c.relus;  // fits(lo), !fits(hi): the cost rises with R between them
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

double CostBudget::of(const PrivateCost& c) const {
  switch (unit) {
    case Unit::Ms: return c.seconds(*link) * 1e3;
    case Unit::Mb: return static_cast<double>(c.online_bytes) / 1e6;
    case Unit::KeyMb: return static_cast<double>(c.key_bytes) / 1e6;
  }
  return 0;
}

std::string CostBudget::unit_text() const {
  switch (unit) {
    case Unit::Ms: return std::string("ms on ") + link->label;
    case Unit::Mb: return "MB online";
    case Unit::KeyMb: return "key MB per party";
  }
  return "";
}

std::string CostBudget::text() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", value);
  return std::string(buf) + " " + (unit == Unit::Mb ? std::string("MB") : unit_text());
}

std::string CostBudget::basis(const TimeModel& model) const {
  switch (unit) {
    case Unit::Ms: return "modelled with " + model.path;
    case Unit::Mb: return "the runtime's exact online bytes";
    case Unit::KeyMb: return "the runtime's exact key sizes";
  }
  return "";
}

std::vector<CostBudget> parse_cost_budgets(const std::string& text, CostBudget::Unit unit, const Link* link,
                                           const std::string& flag) {
  std::vector<CostBudget> out;
  for (const std::string& item : util::split(text, ',')) {
    const std::string t = util::trim(item);
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v) || v <= 0 || v > 1e9)
      throw std::invalid_argument(flag + ": '" + t + "' is not accepted (a positive number" +
                                  (unit == CostBudget::Unit::Ms ? " of milliseconds" : " of megabytes") +
                                  " per image, at most 1e9, e.g. " + flag + " " +
                                  (unit == CostBudget::Unit::Ms ? "300,100" : "5,1.5") + ")");
    out.push_back({unit, v, link});
  }
  if (out.empty()) throw std::invalid_argument(flag + " needs at least one budget");
  return out;
}

}  // namespace dr::pi
