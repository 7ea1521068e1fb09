#pragma once
// What a network costs in two-party private inference (PI): per protocol, the
// traffic and time of its ReLUs (the expensive part), plus the traffic of
// secret-sharing the inputs of its linear layers. Figures come from
// data/pi_protocols.json (docs/method.md section 6). No torch headers here.
//
// Worked example (docs/method.md section 6, per-ReLU figures): ResNet18 at 557,056
// ReLUs costs 557,056 x 32,800 / 8 = 2.28 GB with GC, 299 MB with SCI, 27.9 MB
// with Cheetah. The spec's rounded summary says ~2.9 GB / ~330 MB / ~32 MB:
// its GC figure matches DELPHI's 41-bit field (x 41/32 -> 2.93 GB), and the
// SCI/Cheetah ones are 10-15% above the per-ReLU figures. This code uses the
// per-ReLU figures as given.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::pi {

struct Protocol {
  std::string id;      // "gc", "sci", "cheetah", "gmw"
  std::string name;    // full name
  std::string source;  // where the figures come from
  double bits_per_relu = 0;
  std::optional<double> us_per_relu;  // absent where only rounds are known
  std::optional<int> rounds;          // communication rounds per ReLU, where known
};

struct CostModel {
  std::vector<Protocol> protocols;
  int ring_bits = 32;  // ring the linear-layer inputs are shared over
  std::string path;    // the file it was loaded from
};

// Loads the protocol table. path "" = $DEEPREDUCE_PI_COSTS if set, else
// DEEPREDUCE_DATA_DIR "/pi_protocols.json". Throws std::runtime_error naming
// the file when it is missing or malformed, or a field is missing or has the
// wrong type/value (required: ring_bits; per protocol id, name, source,
// bits_per_relu; optional: us_per_relu, rounds, either may be null).
CostModel load_cost_model(const std::string& path = "");

// The path load_cost_model("") reads.
std::string default_cost_model_path();

// A data file of the PI models: $`env` when set and not empty, else
// DEEPREDUCE_DATA_DIR "/" `file`.
std::string data_file_path(const char* env, const char* file);

// Throws std::invalid_argument "unknown PI protocol 'x' (accepted: gc, sci, ...)".
const Protocol& find_protocol(const CostModel& model, const std::string& id);

// "all", one id, or a comma-separated list ("gc,cheetah"); spaces ignored,
// duplicates dropped, order kept. Throws std::invalid_argument as
// find_protocol does, or for an empty selection.
std::vector<const Protocol*> select_protocols(const CostModel& model, const std::string& which);

struct ProtocolCost {
  std::string protocol;  // Protocol::id
  double relu_bytes = 0;
  std::optional<double> relu_seconds;  // set when the protocol has us_per_relu
};

struct NetworkCost {
  int64_t relus = 0;
  int64_t linear_input_elements = 0;
  // Traffic of secret-sharing the inputs of every conv/FC layer:
  // linear_input_elements * ring_bits / 8.
  double linear_share_bytes = 0;
  // Polynomial elements (arch::SiteOp::Poly), each one secret-shared
  // multiplication x * x with a Beaver triple: both parties open two ring
  // elements, polys * 2 * 2 * ring_bits / 8 bytes in all, whatever the
  // ReLU protocol (the coefficients' products are local).
  int64_t polys = 0;
  double poly_bytes = 0;
  std::vector<ProtocolCost> per_protocol;  // in the order of the protocols asked for

  double total_bytes(const ProtocolCost& p) const { return p.relu_bytes + linear_share_bytes + poly_bytes; }
  // The entry for protocol `id`, or nullptr.
  const ProtocolCost* find(const std::string& id) const;
};

// Sum of in.numel() over every conv and FC layer of `net` (one image). A
// tensor read by two layers (a ResNet block's first conv and its projection
// shortcut) is counted for each.
int64_t linear_input_elements(const dr::arch::Network& net);

// Cost of one image through `net`: its live ReLUs, its polynomial elements and
// its linear-layer inputs.
NetworkCost estimate(const dr::arch::Network& net, const CostModel& model,
                     const std::vector<const Protocol*>& protocols);

// The same from counts alone (reports that only know the ReLU count pass
// linear_input_elements = 0 and get ReLU traffic only).
NetworkCost estimate(int64_t relus, int64_t linear_input_elements, const CostModel& model,
                     const std::vector<const Protocol*>& protocols);

}  // namespace dr::pi
