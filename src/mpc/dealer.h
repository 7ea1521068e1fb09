#pragma once
// The dealer: correlated randomness for `count` inferences of one
// architecture, written as <out_dir>/server.key and <out_dir>/client.key. It
// needs the architecture only, never weights or images (docs/private_inference.md).
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "mpc/architecture.h"

namespace dr::mpc {

struct DealOptions {
  int frac_bits = kDefaultFracBits;
  uint64_t count = 1;    // inferences
  std::string out_dir;   // created if missing
  int threads = 1;       // linear products A*r and gate key generation
  // Stream: out_dir's server.key and client.key are named pipes (mkfifo)
  // that the parties read as the dealer writes (key_stream.h); nothing goes
  // to disk, and each write waits at most stream_timeout_s for its reader.
  bool stream = false;
  double stream_timeout_s = 60;
  // Asked before each block: true stops the deal (DealInterrupted) with no
  // key file written (the CLI's SIGINT/SIGTERM).
  std::function<bool()> interrupted;
};

struct DealInterrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
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
  int64_t poly_elements = 0;                                // per inference
  bool streamed = false;
  double stream_wait_s = 0;  // streamed: the part of `seconds` spent waiting for the parties to read
};

// The exact bytes deal() writes for `count` inferences: both key files
// (UINT64_MAX when that overflows).
uint64_t deal_bytes(const Architecture& arch, int frac_bits, uint64_t count);
// Refuses (std::invalid_argument) writing `need` bytes into `dir` (or, while
// it does not exist, the directory that would hold it) when its file system
// has fewer free: the message says both, and `hint` what to do.
void check_free_space(const std::string& dir, uint64_t need, const std::string& hint);

// Removes stale temporaries of earlier deals in options.out_dir and checks
// free space before writing anything. Throws std::invalid_argument for count
// 0, a bad f or too little space, UnsupportedError for an architecture the
// runtime cannot run, DealInterrupted, std::runtime_error for I/O. Writes
// through temporaries: on any error no key file is left half-written.
DealReport deal(const Architecture& arch, const DealOptions& options);

nlohmann::json to_json(const DealReport& r);

}  // namespace dr::mpc
