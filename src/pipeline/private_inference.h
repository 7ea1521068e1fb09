#pragma once
// Private inference of trained runs and model files (docs/private_inference.md).
// The torch edge hands their weights and a dataset's images to the torch-free runtime
// of src/mpc; every `deepreduce pi` command prints the same summary; and
// run_private_inference starts the dealer, the server and the client as
// three processes of their own on 127.0.0.1.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mpc/architecture.h"
#include "mpc/model.h"
#include "mpc/party.h"

namespace dr::pipeline {

// The trust model, printed with every result.
extern const char* const kTrustModel;

// What the private runtime runs: a finished run, or a model file
// (model.onnx, docs/onnx.md) with the input normalisation it was trained
// with, per channel in [0, 1] units (required for a model file: --mean 0
// --std 1 is none; a run has its own).
struct PiModel {
  std::string path;  // run directory or .onnx file
  std::vector<double> mean, std;
};

// What the dealer sees of a finished run or a model file: its network on its
// input, with its pixel-level ReLU masks if it has any. Throws
// std::invalid_argument for a directory that is not a finished run, and
// onnx::ReadError for a model file that is not accepted.
mpc::Architecture run_architecture(const std::string& run);
// What the server holds: the weights as doubles by state_dict name, and the
// input normalisation. Throws as run_architecture, and std::invalid_argument
// when a model file has no normalisation or a run is given one.
mpc::FloatModel run_float_model(const PiModel& m);
// Refuses (std::invalid_argument, prefixed with `option`) a network the
// private runtime cannot run.
void check_private_runtime(const arch::Network& net, const std::string& option);

// Refuses (std::invalid_argument) a key directory, pi deal's --out (`option`
// names it), that is not empty and holds none of pi deal's files
// (check_output_dir of jobs.h), so that no file of the user's is overwritten.
void check_key_dir(const std::string& dir, const std::string& option);

// The first `count` test images of `data` as the client holds them (raw
// pixels in [0, 1], CHW, with labels). Throws std::invalid_argument when the
// data's images are not `input` or it has fewer than `count` test images.
// `train`: the first `count` training images instead (calibration).
std::vector<mpc::ClientImage> client_images(const std::string& data, int64_t count, const arch::Shape& input,
                                            bool train = false);

// Choosing the width of a reduced-width ReLU gate from data: the ReLU (and
// max-pooling) inputs of the run's fixed-point reference over the first
// `count` training images of `data`, the largest, the narrowest width that
// holds it, and the width chosen with `margin_bits` of headroom (each bit
// doubles the largest input the gate takes exactly).
struct Calibration {
  std::string data;
  int64_t images = 0;
  int frac_bits = mpc::kDefaultFracBits, margin_bits = 0;
  uint64_t largest_fixed = 0;
  double largest = 0;
  int bits_needed = 0, bits = 0;  // bits = min(64, bits_needed + margin_bits)
};
constexpr int kDefaultMarginBits = 4;
constexpr int64_t kDefaultCalibrationImages = 256;
Calibration calibrate_relu_width(const PiModel& m, const std::string& data, int64_t count, int frac_bits,
                                 int margin_bits);
nlohmann::json to_json(const Calibration& c);
// "dcf:auto" / "dpf:auto" with that gate at the calibrated width; any other
// text as mpc::parse_relu_gate reads it (std::invalid_argument otherwise).
bool is_auto_relu_gate(const std::string& text);
mpc::ReluGateChoice calibrated_relu_gate(const std::string& text, const Calibration& c);

// A session as one JSON object, the client's view of both parties: relus
// (live ReLUs), images, accuracy, agreement (null here; run_private_inference
// fills it), online_bytes (both directions, all images), rounds (per image),
// key_bytes (per party, all images), seconds_per_image, layers (per layer:
// name, kind, live ReLUs, bytes each way, rounds, seconds), the exact
// formula, the modelled LAN/WAN time, peak memory, setup traffic, the PI cost
// estimates of `deepreduce cost`, the per-image predictions, trust model and
// provenance.
nlohmann::json session_summary(const mpc::ClientReport& report, const mpc::Architecture& arch, int threads);
// The summary for people: totals, per-image figures, and the per-layer table.
std::string summary_table(const nlohmann::json& summary);

struct PiRunOptions {
  std::string run, data;  // run: a run directory or a model file
  std::vector<double> mean, std;  // a model file's normalisation (PiModel)
  int64_t count = 10;
  int64_t batch = 1;      // images per batch (ClientOptions::batch)
  int frac_bits = mpc::kDefaultFracBits;
  mpc::ReluGateChoice relu_gate;  // what the keys are dealt for (pi deal --relu-gate)
  // "dcf:auto" / "dpf:auto": that gate at the width calibrate_relu_width
  // chooses from the first calibration_images training images of `data`
  // (relu_gate is then ignored); "" = relu_gate as given.
  std::string auto_gate;
  int64_t calibration_images = kDefaultCalibrationImages;
  int margin_bits = kDefaultMarginBits;
  int threads = 1;        // per party
  double timeout_s = 60;  // every wait of a party for the other
  std::string keys;       // key directory; "" = a temporary one, removed afterwards
  // Without `keys`: the dealer streams the keys to the parties through
  // named pipes while they run (none on disk); deal_first: it writes them
  // into the temporary directory first, so its work does not share the
  // machine with the parties' online phase (latency measurements).
  bool deal_first = false;
  std::string state_dir;  // the parties' key ledger (mpc/ledger.h); "" = the default
  std::string binary;     // the deepreduce executable ("" = this process's own)
  bool quiet = false;     // the parties' progress lines off
};

// Checks everything (run, data, count, the runtime's support of the network,
// the key directory, free space for the keys), deals, serves and runs the client as three
// processes, then adds agreement with the run's float model and with the
// plaintext fixed-point reference, and the dealer's figures.
nlohmann::json run_private_inference(const PiRunOptions& o);

}  // namespace dr::pipeline
