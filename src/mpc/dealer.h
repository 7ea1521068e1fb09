#pragma once
// The dealer: correlated randomness for `count` inferences of one
// architecture, written as <out_dir>/server.key and <out_dir>/client.key. It
// needs the architecture only, never weights or images (docs/private_inference.md).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "mpc/architecture.h"

namespace dr::mpc {

struct DealOptions {
  int frac_bits = kDefaultFracBits;
  uint64_t count = 1;    // inferences
  std::string out_dir;   // created if missing
  int threads = 1;       // linear products A*r and ReLU key generation
};

struct DealReport {
  double seconds = 0;
  uint64_t count = 0;
  int frac_bits = 0;
  std::string model_hash;  // hex
  std::string server_path, client_path;
  uint64_t server_file_bytes = 0, client_file_bytes = 0;    // whole files
  uint64_t server_block_bytes = 0, client_block_bytes = 0;  // per inference (with its checksum)
  uint64_t server_global_bytes = 0;                         // weight masks, once per key set
  int64_t live_relus = 0;                                   // per inference
};

// Throws std::invalid_argument for count 0 or a bad f, UnsupportedError for
// an architecture the runtime cannot run, std::runtime_error for I/O.
DealReport deal(const Architecture& arch, const DealOptions& options);

nlohmann::json to_json(const DealReport& r);

}  // namespace dr::mpc
