#pragma once
// What a network costs a user of deepreduce's own private runtime (`pi run`),
// before it is run: the exact online bytes and rounds (mpc/cost.h, the same
// formula `pi run` meets) and a modelled latency, compute plus the link:
//
//   compute  = base + per_relu * ReLUs + per_poly * polynomial elements
//                   + per_mac * multiply-accumulates + per_round * rounds
//   latency  = compute + rounds * RTT + max(client->server, server->client) bytes * 8 / rate
//
// The compute coefficients are a time model measured on a machine by
// bench/pi_time_model.sh (data/pi_time_model.json, with its provenance and
// how well it predicted `pi run` there); the link term is the one `pi run`'s
// "modelled" LAN/WAN figures use. A budget in what users pay (milliseconds on
// a link, or online megabytes) is planned with it. A modelled latency is an
// estimate; `pi run` measures.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "arch/network.h"
#include "mpc/program.h"

namespace dr::pi {

// The networks the modelled latencies assume (LAN and WAN of the PI literature).
struct Link {
  const char* name;   // "lan"
  const char* label;  // "LAN"
  const char* text;   // "LAN (1 Gb/s, 0.5 ms RTT)"
  double bits_per_s, rtt_s;
};
extern const Link kLan, kWan;
// "lan" or "wan"; std::invalid_argument naming `flag` and what is accepted otherwise.
const Link& find_link(const std::string& name, const std::string& flag = "--link");

// Seconds of compute per image on the machine it was measured on (both
// parties and the loopback between them, as `pi run` measures its online latency).
struct TimeModel {
  double base_s = 0, per_relu_s = 0, per_poly_s = 0, per_mac_s = 0, per_round_s = 0;
  nlohmann::json provenance;  // the machine and build it was measured with
  std::string path;           // the file it was read from
};
// path "" = $DEEPREDUCE_PI_TIME_MODEL if set, else DEEPREDUCE_DATA_DIR
// "/pi_time_model.json". std::runtime_error naming the file and the field for
// a missing or malformed one (each coefficient a finite number >= 0).
TimeModel load_time_model(const std::string& path = "");

// A link's part of a latency: per round its round trip, plus the larger
// direction's bytes at its rate (both directions travel at once).
double link_seconds(const Link& l, double rounds, double larger_direction_bytes);

struct PrivateCost {
  int64_t relus = 0, polys = 0, macs = 0;
  int64_t online_bytes = 0, client_sent = 0, server_sent = 0, rounds = 0;  // exact, per image
  int64_t key_bytes = 0;  // exact, per image: the larger party's key (the dealer ships both)
  double compute_s = 0;                                                      // modelled
  // Modelled seconds per image on `l`; run in batches of `batch` images (pi
  // run --batch) a batch's rounds are shared by its images: the link's part
  // is a batch's (its rounds, `batch` times the bytes) over `batch`, the
  // compute an image's (loopback time per image does not fall with batches:
  // docs/private_inference.md, "Latency, threads and batches").
  double seconds(const Link& l, int64_t batch = 1) const;
};
// Throws mpc::UnsupportedError (std::runtime_error) for what the runtime cannot run.
// `relu_gate`: the comparison the keys would be dealt for; its bytes, rounds
// and keys are exact, its compute modelled with the model's per-ReLU time
// (measured on the one-round gate).
PrivateCost private_cost(const arch::Network& net, const TimeModel& model, mpc::ReluGateChoice relu_gate = {});

// A budget in what users pay, per image: milliseconds of modelled latency on
// a link, megabytes (1e6 bytes) of online traffic, or megabytes of key the
// dealer makes for the larger party (the offline cost that grows with ReLUs:
// 2,080 bytes each, a polynomial element 40).
struct CostBudget {
  enum class Unit { Ms, Mb, KeyMb } unit = Unit::Mb;
  double value = 0;
  const Link* link = nullptr;  // Ms only
  double of(const PrivateCost& c) const;  // the cost in the budget's unit
  std::string text() const;               // "20 ms on WAN", "1.5 MB"
  std::string unit_text() const;          // "ms on WAN", "MB online"
  std::string basis(const TimeModel& model) const;  // where its figures come from, for messages
};
// "20,5.5" -> budgets of `unit` (a positive finite number each, at most 1e9).
// std::invalid_argument naming `flag` and the bad item.
std::vector<CostBudget> parse_cost_budgets(const std::string& text, CostBudget::Unit unit, const Link* link,
                                           const std::string& flag);

// A mask search from `start` (every ReLU of its live sites a candidate) makes
// networks with R live ReLUs and its other elements `dropped` (identity or
// polynomial). The most R whose cost is within `budget`, planned with every
// site keeping at least one ReLU (the most rounds: a point's true cost is at
// most the plan's); -1 when even R = 0 is over it. The cost is linear in R:
// the bytes and compute of one element of each kind, the rounds fixed. With
// a ReLU gate that packs bits (dpf:N: its round-1 bits 32 to a word) a
// ReLU's bytes are the start's mean per ReLU, exact at R = 0 and at the
// start, within a word per site between them.
struct SearchCost {
  PrivateCost at_zero;         // R = 0: the fixed part, with the plan's rounds
  double per_relu_bytes = 0;   // online bytes one more ReLU adds (the dropped element's less)
  double per_relu_key = 0;     // key bytes per party likewise
  double per_relu_compute = 0; // compute one more ReLU adds (the dropped element's less)
  int64_t relus = 0;           // the start's live ReLUs (R's most)
};
SearchCost search_cost(const arch::Network& start, arch::SiteOp dropped, const TimeModel& model,
                       mpc::ReluGateChoice relu_gate = {});
int64_t relus_within(const SearchCost& c, const CostBudget& budget);
// The cost at R live ReLUs, as planned.
PrivateCost cost_at(const SearchCost& c, int64_t relus);

}  // namespace dr::pi
