#pragma once
// The exact online cost of one private inference (docs/private_inference.md,
// "Cost per image, exactly"), payload bytes of both directions together:
//
//   bytes  = 8*I + sum over linear layers 16*O_l + sum over gate steps 16*w_g*R_k
//   rounds = 1 + #linear layers + sum over gate steps rounds_g
//
// with R_k a step's live elements and w_g, rounds_g its gate's words per
// element and rounds (gate.h; the ReLU and the polynomial gate: 1 and 1),
// but 0 for a gate step whose shares the step before opened with its own
// (Step::opens_with_next: a site's polynomial elements beside its ReLUs).
//
// Framing (24 bytes per message, one message per party and round) comes on
// top and is reported apart; so are the handshake and the setup (W^, and
// each gate's setup words: the polynomial gate's a^, b^, 16*C bytes a step).
// Per gate, the totals also give the key bytes per party and inference.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpc/architecture.h"
#include "mpc/program.h"

namespace dr::mpc {

struct StepCost {
  std::string name, kind;  // kind: step_kind_name
  int64_t elements = 0;    // exchanged elements: input I, linear O_l, gate R_k; 0 for local steps
  int64_t bytes = 0;       // payload, both directions
  int64_t rounds = 0;
};

// One gate's steps, live elements, online bytes (both directions, per
// image), rounds (per image), key bytes (per party and inference) and setup
// bytes (server to client, once per session).
struct GateTotal {
  std::string gate;  // Gate::name()
  int64_t steps = 0, elements = 0, bytes = 0;
  int64_t rounds = 0, key_bytes = 0, setup_bytes = 0;
};

struct ExpectedCost {
  int64_t input_elements = 0, linear_layers = 0, linear_outputs = 0;
  int64_t input_bytes = 0, linear_bytes = 0;
  std::vector<GateTotal> gates;  // by gate, in order of first use
  // The ReLU gate's entry of `gates` (zero without one): the ReLU count every report shows.
  int64_t relu_layers = 0, live_relus = 0, relu_bytes = 0;
  int64_t online_bytes = 0;                  // payload, both directions
  int64_t client_sent = 0, server_sent = 0;  // the same split by sender
  int64_t rounds = 0;
  int64_t messages = 0;                      // frames, both directions
  int64_t framing_bytes = 0;                 // 24 per frame
  // Key bytes per inference, per party (keys.h step_key_bytes: what the
  // dealer writes for one image, the session's global section aside).
  int64_t server_key_bytes = 0, client_key_bytes = 0;
  std::vector<StepCost> steps;               // every program step, in order
};

// From a program of either detail (only Step::live_count is read). `batch`:
// one batch of that many images run together (the parties' --batch: each
// message carries every image's shares, so the rounds are one image's and
// the bytes about `batch` times; a gate that packs bits packs the batch's
// together); the key bytes stay per image.
ExpectedCost expected_cost(const Program& program, int64_t batch = 1);
// The most inferences a batch may hold (ClientOptions::batch in party.h):
// each party holds a batch's key blocks at once.
constexpr uint64_t kMaxBatch = 1024;
// From a network or an architecture: compiled with ProgramDetail::Counts, so any
// network the description accepts is costed without one index per ReLU
// element. Throws UnsupportedError for what the runtime cannot run.
ExpectedCost expected_cost(const Architecture& arch);
ExpectedCost expected_cost(const arch::Network& net);

nlohmann::json to_json(const ExpectedCost& c);

}  // namespace dr::mpc
