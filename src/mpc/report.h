#pragma once
// What a private-inference session measured, per party and per layer, and
// its JSON form. Per-layer figures are summed over the session's inferences
// in memory; to_json reports them per image (the mean over the inferences;
// bytes and rounds are the same for every image).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpc/cost.h"

namespace dr::mpc {

struct LayerRecord {
  std::string name, kind;  // kind: step_kind_name, or "preprocessing"
  int64_t live_relus = 0;  // per image
  uint64_t bytes_sent = 0, bytes_received = 0;      // payload
  uint64_t framing_sent = 0, framing_received = 0;  // frame headers
  int64_t rounds = 0;
  double compute_s = 0;    // this party's own work
  double wait_s = 0;       // blocked waiting for the peer
  LayerRecord& operator+=(const LayerRecord& o);
};

struct PartyReport {
  std::string party;                // "server" or "client"
  int64_t inferences = 0;
  int64_t batch = 1, batches = 0;   // inferences per batch (--batch), batches run
  uint64_t first_inference = 0;     // index of the first key block used
  std::vector<LayerRecord> layers;  // program steps in order, summed over inferences
  LayerRecord online;               // sum of the layers
  double preprocessing_s = 0;       // input-independent work, summed over inferences (without key_wait_s)
  bool key_streamed = false;        // the key file is a pipe the dealer writes during the session
  double key_wait_s = 0;            // streamed: the time spent waiting for the dealer's key blocks, summed
  double online_s = 0;              // wall time of the online phase, summed (the server's
                                    // includes waiting for the client's input)
  LayerRecord setup;                // handshake and W^ (once per session)
  uint64_t key_file_bytes = 0, key_bytes_per_inference = 0;
  int64_t peak_rss_bytes = 0;       // getrusage ru_maxrss
  int threads = 1;
};

struct ImageResult {
  int64_t index = 0;        // position in the session
  uint64_t key_index = 0;   // key block used
  int64_t label = -1, argmax = -1;
  std::vector<double> logits;
  std::vector<int64_t> logits_fixed;  // scale 2^f
  int64_t batch = 1;          // inferences in its batch, run together
  double batch_online_s = 0;  // client: the batch's time from sending x^ to the logits (this image's latency)
  double online_s = 0;        // its share of that: batch_online_s / batch
  double preprocessing_s = 0; // client's input-independent work for this image
  uint64_t bytes = 0, framing_bytes = 0;  // its share of the client's online payload sent + received; framing apart
  int64_t rounds = 0;                      // its batch's
};

struct ClientReport {
  std::string model_hash;
  std::string spec;
  int frac_bits = 0;
  std::vector<ImageResult> images;
  PartyReport client, server;
  ExpectedCost expected;
};

struct ServerReport {
  int port = 0;
  std::string model_hash;
  PartyReport server;
};

// Per image (`per` images; rounds per batch: `batches`, 0 = per).
nlohmann::json to_json(const LayerRecord& r, int64_t per = 1, int64_t batches = 0);
nlohmann::json to_json(const PartyReport& r);
nlohmann::json to_json(const ImageResult& r);
nlohmann::json to_json(const ClientReport& r);
nlohmann::json to_json(const ServerReport& r);

// The raw (summed) form the server sends to the client at the end of a session.
nlohmann::json party_records(const PartyReport& r);
PartyReport party_from_records(const nlohmann::json& j);

// getrusage(RUSAGE_SELF) ru_maxrss in bytes.
int64_t peak_rss_bytes();

}  // namespace dr::mpc
