#include "pipeline/private_inference.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <utility>

#include "arch/spec.h"
#include "data/dataset.h"
#include "mpc/cost.h"
#include "mpc/dealer.h"
#include "mpc/program.h"
#include "mpc/reference.h"
#include "nn/net.h"
#include "onnx/reader.h"
#include "pipeline/jobs.h"
#include "pi/cost.h"
#include "report/format.h"
#include "report/table.h"
#include "train/provenance.h"
#include "train/trainer.h"
#include "train/weights.h"
#include "util/fs.h"
#include "util/strings.h"
#include "util/subprocess.h"

namespace dr::pipeline {

const char* const kTrustModel =
    "semi-honest two-party computation with a non-colluding dealer: the dealer (offline, sees the architecture "
    "only), the server (weights) and the client (images) as three processes";

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A run's or a model file's network, weights and normalisation (PiModel).
struct LoadedModel {
  arch::Network net;
  train::StateDict weights;
  std::vector<double> mean, std;
};

LoadedModel load_model(const PiModel& m) {
  if (onnx::is_onnx_path(m.path)) {
    if (m.mean.empty() || m.std.empty())
      throw std::invalid_argument("model file " + m.path + ": give --mean and --std, the input normalisation it was "
                                  "trained with, per channel in [0,1] units (--mean 0 --std 1: none)");
    const onnx::Model model = onnx::read_model(m.path);
    train::check_normalisation(m.mean, m.std, model.net.input.c);
    return {model.net, train::onnx_state_dict(model), m.mean, m.std};
  }
  if (!m.mean.empty() || !m.std.empty())
    throw std::invalid_argument("--mean and --std are a model file's; run '" + m.path + "' normalises as it was trained");
  const train::RunResult r = train::require_finished(m.path);
  return {train::run_network(m.path), train::load_run_weights(m.path), r.mean, r.std};
}

// The float model's logits for the images, normalised as it was trained.
std::vector<std::vector<double>> float_logits(const LoadedModel& m, const std::vector<mpc::ClientImage>& images) {
  nn::Net net(m.net);
  train::load_into(net, m.weights, true, "the weights of " + m.net.spec);
  net->eval();
  torch::NoGradGuard ng;
  const arch::Shape s = net->desc().input;
  std::vector<std::vector<double>> out;
  for (const auto& im : images) {
    auto x = torch::from_blob(const_cast<float*>(im.pixels.data()), {1, s.c, s.h, s.w}, torch::kFloat).clone();
    for (int64_t c = 0; c < s.c; ++c)
      x[0][c].sub_(m.mean.empty() ? 0.0 : m.mean[c]).div_(m.std.empty() ? 1.0 : m.std[c]);
    const torch::Tensor y = net->forward(x).to(torch::kDouble).contiguous();
    out.emplace_back(y.data_ptr<double>(), y.data_ptr<double>() + y.numel());
  }
  return out;
}

// "0.2860,0.353": the values as a --mean or --std option, exactly.
std::string exact_list(const std::vector<double>& v) {
  std::vector<std::string> parts;
  for (double x : v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    parts.emplace_back(buf);
  }
  return util::join(parts, ",");
}

mpc::FloatModel float_model(const LoadedModel& l) {
  mpc::FloatModel m;
  for (const auto& [name, t] : l.weights) {
    const torch::Tensor d = t.to(torch::kDouble).contiguous();
    m.params[name].assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  m.mean = l.mean;
  m.std = l.std;
  mpc::check_model(l.net, m);
  return m;
}

}  // namespace

mpc::Architecture run_architecture(const std::string& run) {
  return mpc::architecture_of(onnx::is_onnx_path(run) ? onnx::read_model(run).net : train::run_network(run));
}

mpc::FloatModel run_float_model(const PiModel& m) { return float_model(load_model(m)); }

void check_private_runtime(const arch::Network& net, const std::string& option) {
  try {
    mpc::compile_program(net);
  } catch (const mpc::UnsupportedError& e) {
    throw std::invalid_argument(option + ": " + e.what());
  }
}

void check_key_dir(const std::string& dir, const std::string& option) {
  try {
    check_output_dir(dir, "pi deal", {"server.key*", "client.key*"});  // the key files and their temporaries
  } catch (const std::invalid_argument& e) {
    if (option == "--out") throw;
    throw std::invalid_argument(option + " is pi deal's --out: " + e.what());
  }
}

std::vector<mpc::ClientImage> client_images(const std::string& data, int64_t count, const arch::Shape& input,
                                            bool train) {
  if (count < 1) throw std::invalid_argument("--count must be >= 1 (got " + std::to_string(count) + ")");
  const arch::DataSource src = arch::parse_source(data);
  if (!(src.input.shape == input))
    throw std::invalid_argument("--data " + data + " gives " + src.input.shape.str() + " images; the network takes " +
                                input.str());
  const data::DataSplit split = data::load_dataset(data, count);
  const data::Dataset& test = train ? split.train : split.test;
  if (test.size() < count)
    throw std::invalid_argument("--data " + data + " has " + std::to_string(test.size()) + (train ? " training" : " test") +
                                " images, fewer than " + (train ? "--calibrate " : "--count ") + std::to_string(count));
  const torch::Tensor px = test.images.slice(0, 0, count).to(torch::kFloat).div(255.0).contiguous();
  std::vector<mpc::ClientImage> out(static_cast<size_t>(count));
  const int64_t per = px.numel() / count;
  for (int64_t i = 0; i < count; ++i) {
    out[i].pixels.assign(px.data_ptr<float>() + i * per, px.data_ptr<float>() + (i + 1) * per);
    out[i].label = test.labels[i].item<int64_t>();
  }
  return out;
}

namespace {

// The narrowest gate width N whose range holds |x| <= largest (|x| <
// 2^(N-1)), at least the narrowest gate there is.
int bits_needed(uint64_t largest) {
  int needed = 1;
  while (needed < 64 && largest >= (uint64_t(1) << (needed - 1))) ++needed;
  return std::max(needed, mpc::ReluGateChoice::kMinBits);
}

// calibrate_relu_width of a loaded network and its float model.
Calibration calibrate(const arch::Network& net, const mpc::FloatModel& model, const std::string& data, int64_t count,
                      int frac_bits, int margin_bits) {
  if (count < 1) throw std::invalid_argument("--calibrate must be >= 1 image (got " + std::to_string(count) + ")");
  if (margin_bits < 0 || margin_bits > 32)
    throw std::invalid_argument("--margin-bits must be in 0..32 (got " + std::to_string(margin_bits) + ")");
  mpc::check_frac_bits(frac_bits);
  const mpc::Architecture arch = mpc::architecture_of(net);
  const mpc::Program program = mpc::compile_program(arch);  // the 64-bit gate: exact references
  const mpc::QuantModel q = mpc::quantise(program, model, frac_bits);
  Calibration c;
  c.data = data;
  c.images = count;
  c.frac_bits = frac_bits;
  c.margin_bits = margin_bits;
  mpc::GateInputRange range;
  for (const mpc::ClientImage& image : client_images(data, count, arch.input, true))
    mpc::fixed_reference(program, q, model, image.pixels, &range);
  c.largest_fixed = range.largest;
  c.largest = static_cast<double>(range.largest) / std::ldexp(1.0, frac_bits);
  c.bits_needed = bits_needed(range.largest);
  c.bits = std::min(mpc::ReluGateChoice::kMaxBits, c.bits_needed + margin_bits);
  return c;
}

}  // namespace

Calibration calibrate_relu_width(const PiModel& m, const std::string& data, int64_t count, int frac_bits,
                                 int margin_bits) {
  const LoadedModel loaded = load_model(m);
  return calibrate(loaded.net, float_model(loaded), data, count, frac_bits, margin_bits);
}

json to_json(const Calibration& c) {
  return {{"data", c.data}, {"split", "train"}, {"images", c.images}, {"frac_bits", c.frac_bits},
          {"largest_fixed", c.largest_fixed}, {"largest", c.largest}, {"bits_needed", c.bits_needed},
          {"margin_bits", c.margin_bits}, {"bits", c.bits}};
}

bool is_auto_relu_gate(const std::string& text) { return text == "dcf:auto" || text == "dpf:auto"; }

mpc::ReluGateChoice calibrated_relu_gate(const std::string& text, const Calibration& c) {
  if (!is_auto_relu_gate(text)) return mpc::parse_relu_gate(text);
  mpc::ReluGateChoice gate;
  gate.kind = text == "dpf:auto" ? mpc::ReluGateChoice::Kind::Dpf : mpc::ReluGateChoice::Kind::Dcf;
  gate.bits = c.bits;  // in kMinBits..kMaxBits by calibrate_relu_width
  return gate;
}

namespace {

// A key directory: the given one, or a fresh temporary one removed afterwards
// (a key set holds about 2 KB per live ReLU per party per image).
struct KeyDir {
  std::string path;
  bool temporary = false;
  explicit KeyDir(const std::string& given) : path(given) {
    if (!path.empty()) {
      util::make_dirs(path);
      return;
    }
    std::string tmpl = (fs::temp_directory_path() / "deepreduce-pi-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary key directory " + tmpl);
    path = tmpl;
    temporary = true;
  }
  ~KeyDir() {
    std::error_code ec;
    if (temporary) fs::remove_all(path, ec);
  }
};

// The children of one run, killed if the run fails before they finish.
struct Children {
  std::vector<util::Child*> live;
  ~Children() {
    for (auto* c : live) util::kill_child(*c);
  }
};

int finish(util::Child& c, std::string* out, const std::string& what) {
  if (out) *out = util::read_all(c.out);
  const int rc = util::wait_child(c);
  if (rc != 0) throw std::runtime_error(what + " failed (exit " + std::to_string(rc) + "; its error is above)");
  return rc;
}

json parse_output(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(what + " printed no result: " + std::string(e.what()).substr(0, 200));
  }
}

// What a user pays per image in all, offline and online: the dealer's time
// and the key it ships to both parties, each party's preprocessing (reading
// and checking its key block, the input-independent linear work), the
// online latency; offline = dealer + the slower party's preprocessing.
json whole_bill(const json& summary, const json& deal) {
  const double images = std::max(1.0, summary["images"].get<double>());
  // A streaming dealer's seconds include waiting for the parties to read.
  const double dealer = (deal["seconds"].get<double>() - deal.value("stream_wait_s", 0.0)) / images;
  const double prep_client = summary["preprocessing_s_per_image"]["client"].get<double>(),
               prep_server = summary["preprocessing_s_per_image"]["server"].get<double>();
  const double online = summary["seconds_per_image"].get<double>();
  const double offline = dealer + std::max(prep_client, prep_server);
  return {{"dealer_s", dealer},
          {"key_bytes", summary["key_bytes_per_image"]["server"].get<double>() +
                            summary["key_bytes_per_image"]["client"].get<double>()},
          {"preprocessing_s", {{"client", prep_client}, {"server", prep_server}}},
          {"online_s", online},
          {"offline_s", offline},
          {"keys_streamed", deal.value("streamed", false)},
          {"elapsed_s", summary["elapsed_s"].get<double>() / images},
          {"offline_per_online", online > 0 ? json(offline / online) : json()}};
}

// What the ReLU and max gates' inputs were over the run, in the fixed-point
// reference: the largest |input| (fixed point and real), the smallest
// dpf:N gate that holds it, and how many inputs lay outside the gate's
// range (their sign read from the low N bits, as the protocol does).
json comparison_inputs(const mpc::GateInputRange& r, const mpc::ReluGateChoice& gate, int frac_bits) {
  return {{"relu_gate", mpc::relu_gate_name(gate)},
          {"out_of_range", r.out_of_range},
          {"largest_fixed", r.largest},
          {"largest", static_cast<double>(r.largest) / std::ldexp(1.0, frac_bits)},
          {"bits_needed", bits_needed(r.largest)}};
}

// Private logits against the float model and the fixed-point reference.
void add_agreement(json& summary, const PiRunOptions& o, const LoadedModel& loaded, const mpc::FloatModel& model,
                   const mpc::Program& program, const std::vector<mpc::ClientImage>& images) {
  const mpc::QuantModel q = mpc::quantise(program, model, o.frac_bits);
  const std::vector<std::vector<double>> plain = float_logits(loaded, images);
  mpc::Agreement ref;
  mpc::GateInputRange comparisons;
  int64_t equal = 0;
  json disagreements = json::array();
  for (size_t i = 0; i < images.size(); ++i) {
    const json& p = summary["predictions"][i];
    const std::vector<int64_t> fixed = mpc::fixed_reference(program, q, model, images[i].pixels, &comparisons);
    ref.add(p["logits_fixed"].get<std::vector<int64_t>>(), fixed, o.frac_bits);
    const int64_t mine = p["argmax"].get<int64_t>(), theirs = mpc::argmax(plain[i]);
    if (mine == theirs) {
      ++equal;
      continue;
    }
    // A disagreement the fixed-point reference shares is the quantisation's,
    // not the protocol's: the float model's top two are then within its error.
    disagreements.push_back({{"index", p.value("index", int64_t(i))},
                             {"private", mine},
                             {"float", theirs},
                             {"fixed_reference", mpc::argmax(fixed)},
                             {"float_margin", plain[i][size_t(theirs)] - plain[i][size_t(mine)]}});
  }
  summary["agreement"] = static_cast<double>(equal) / static_cast<double>(images.size());
  summary["float_disagreements"] = disagreements;
  summary["reference"] = mpc::to_json(ref);
  summary["comparison_inputs"] = comparison_inputs(comparisons, program.relu_gate, o.frac_bits);
  summary["reference"]["agreement"] = static_cast<double>(ref.argmax_equal) / static_cast<double>(ref.images);
}

// The named pipes the dealer streams the parties' keys through.
void make_key_pipes(const std::string& dir) {
  for (const char* name : {"server.key", "client.key"})
    if (::mkfifo(util::path_join(dir, name).c_str(), 0600) != 0)
      throw std::runtime_error("cannot make the key pipe " + util::path_join(dir, name) + ": " + std::strerror(errno));
}

// The dealer, the server and the client as processes of their own: the
// dealer first (streaming: beside the parties, into the pipes in `keys`),
// then the server, then the client. Returns the client's summary and the
// dealer's report.
std::pair<json, json> run_parties(const PiRunOptions& o, const mpc::Architecture& arch, const KeyDir& keys,
                                  bool stream) {
  const std::string bin = o.binary.empty() ? util::self_executable() : o.binary;
  const std::string n = std::to_string(o.count), f = std::to_string(o.frac_bits), t = std::to_string(o.threads),
                    timeout = report::fixed(o.timeout_s, 1);
  std::vector<std::string> party_flags = o.quiet ? std::vector<std::string>{"--quiet"} : std::vector<std::string>{};
  // Keys in a temporary directory are removed after the run, and so is their
  // ledger there: entries for them would pile up in the user's state directory.
  const std::string state = keys.temporary && o.state_dir.empty() ? util::path_join(keys.path, "state") : o.state_dir;
  if (!state.empty()) party_flags.insert(party_flags.end(), {"--state-dir", state});
  // Declared before the guard that kills them on an error, so they outlive
  // it; one not started yet or already reaped has pid -1, which it skips.
  util::Child dealer, server, client_proc;
  Children children{{&dealer, &server, &client_proc}};
  std::string out;
  std::vector<std::string> deal_args = {bin, "pi", "deal", o.run, "--out", keys.path, "--count", n, "--frac-bits", f,
                                        "--threads", t, "--relu-gate", mpc::relu_gate_name(arch.relu_gate),
                                        "--format", "json"};
  if (stream) deal_args.insert(deal_args.end(), {"--stream", "--timeout", timeout});
  dealer = util::spawn(deal_args, true);
  json deal;
  if (!stream) {
    finish(dealer, &out, "the dealer");
    deal = parse_output(out, "the dealer");
  }
  std::vector<std::string> serve = {bin, "pi", "serve", o.run, "--keys", keys.path + "/server.key", "--port", "0",
                                    "--timeout", timeout, "--threads", t, "--format", "json"};
  serve.insert(serve.end(), party_flags.begin(), party_flags.end());
  for (const auto& [flag, values] : {std::pair{"--mean", &o.mean}, std::pair{"--std", &o.std}})
    if (!values->empty()) serve.insert(serve.end(), {flag, exact_list(*values)});
  server = util::spawn(serve, true);
  const std::string listening = util::read_line(server.out, o.timeout_s, "the server's port");
  const auto colon = listening.rfind(':');
  if (listening.rfind("listening on ", 0) != 0 || colon == std::string::npos)
    throw std::runtime_error("the server did not start (it printed '" + listening + "')");
  std::vector<std::string> client = {bin, "pi", "client", "--keys", keys.path + "/client.key", "--connect",
                                     "127.0.0.1:" + listening.substr(colon + 1), "--data", o.data, "--count", n,
                                     "--batch", std::to_string(o.batch),
                                     "--timeout", timeout, "--threads", t, "--format", "json"};
  client.insert(client.end(), party_flags.begin(), party_flags.end());
  client_proc = util::spawn(client, true);
  finish(client_proc, &out, "the client");
  json summary = parse_output(out, "the client");
  finish(server, &out, "the server");
  if (stream) {
    finish(dealer, &out, "the dealer");
    deal = parse_output(out, "the dealer");
  }
  return {summary, deal};
}

}  // namespace

json run_private_inference(const PiRunOptions& o) {
  if (o.threads < 1 || o.threads > 256) throw std::invalid_argument("--threads must be in 1..256");
  if (!(o.timeout_s > 0 && o.timeout_s <= 86400)) throw std::invalid_argument("--timeout must be in (0, 86400] s");
  mpc::check_frac_bits(o.frac_bits);
  // Read once (a model file is parsed and checked whole): network, weights
  // and normalisation, which the weights are checked against below.
  const LoadedModel model = load_model({o.run, o.mean, o.std});
  mpc::Architecture arch = mpc::architecture_of(model.net);
  check_private_runtime(mpc::build_network(arch), "pi run " + o.run);
  const mpc::FloatModel floats = float_model(model);  // checks that the weights fit the network
  std::optional<Calibration> calibration;
  if (!o.auto_gate.empty()) {
    calibration = calibrate(model.net, floats, o.data, o.calibration_images, o.frac_bits, o.margin_bits);
    arch.relu_gate = calibrated_relu_gate(o.auto_gate, *calibration);
  } else {
    arch.relu_gate = o.relu_gate;
  }
  const mpc::Program program = mpc::compile_program(arch);
  const std::vector<mpc::ClientImage> images = client_images(o.data, o.count, arch.input);
  if (!o.keys.empty()) check_key_dir(o.keys, "--keys");
  const KeyDir keys(o.keys);
  // Without --keys the dealer streams each party's keys through a named pipe
  // as the party reads them: nothing goes to disk, and the dealer works
  // while the parties do. With --keys (or --deal-first) the key files are
  // written first (and with --keys they stay).
  const bool stream = keys.temporary && !o.deal_first;
  if (stream) {
    make_key_pipes(keys.path);
  } else {
    mpc::check_free_space(keys.path, mpc::deal_bytes(arch, o.frac_bits, uint64_t(o.count)),
                          "give --keys DIR on a larger disk or a smaller --count, or let the keys stream (neither --keys "
                          "nor --deal-first)");
  }
  const auto started = std::chrono::steady_clock::now();
  auto [summary, deal] = run_parties(o, arch, keys, stream);
  summary["elapsed_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  add_agreement(summary, o, model, floats, program, images);
  summary["dealer"] = deal;
  summary["bill_per_image"] = whole_bill(summary, deal);
  if (calibration) summary["calibration"] = to_json(*calibration);
  summary["processes"] = "dealer, server and client: three processes on 127.0.0.1";
  return summary;
}

}  // namespace dr::pipeline
