// `deepreduce pi deal|serve|client|run`: private inference of a trained run
// between a dealer, a server and a client (docs/private_inference.md).
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <utility>

#include "commands.h"
#include "mpc/cost.h"
#include "mpc/dealer.h"
#include "mpc/keys.h"
#include "pipeline/private_inference.h"
#include "report/format.h"
#include "report/table.h"
#include "util/strings.h"

namespace dr::cli {

namespace {

// --format of every pi command: table or json.
void check_table_or_json(const std::string& format) {
  if (format != "table" && format != "json") throw UsageError("--format '" + format + "': accepted table, json");
}

// A party's JSON record with the trust model it was made under.
nlohmann::json with_trust_model(nlohmann::json j) {
  j["trust_model"] = pipeline::kTrustModel;
  return j;
}

struct PartyFlags {
  double timeout = 60;
  int threads = 1;
  std::string format = "table", state_dir;
  bool quiet = false;
  void add(CLI::App* cmd) {
    cmd->add_option("--timeout", timeout, "Seconds a party waits for the other (connect, every message) before failing")
        ->capture_default_str();
    cmd->add_option("--threads", threads, "Threads of this party (linear layers, ReLU evaluation)")->capture_default_str();
    cmd->add_option("--format", format, "Output: table or json")->capture_default_str();
    cmd->add_flag("--quiet", quiet, "No progress lines");
    cmd->add_option("--state-dir", state_dir,
                    "Where this machine's ledger of used key blocks lives (default: $DEEPREDUCE_STATE_DIR, else "
                    "$XDG_STATE_HOME/deepreduce, else ~/.local/state/deepreduce)");
  }
  void check() const {
    check_table_or_json(format);
    if (!(timeout > 0 && timeout <= 86400)) throw UsageError("--timeout must be in (0, 86400] seconds");
    if (threads < 1 || threads > 256) throw UsageError("--threads must be in 1..256");
  }
};

// SIGINT/SIGTERM while dealing: the handler only records the signal; the
// dealer stops before its next block, its temporary files are removed as the
// error unwinds, and then the process dies of the signal as it would have.
// A signal the process was started ignoring (nohup, `&`) stays ignored.
volatile std::sig_atomic_t g_deal_signal = 0;
extern "C" void record_deal_signal(int sig) { g_deal_signal = sig; }

class DealSignals {
 public:
  DealSignals() {
    struct sigaction sa {};
    sa.sa_handler = record_deal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < 2; ++i)
      if (::sigaction(kSignals[i], nullptr, &old_[i]) == 0 && old_[i].sa_handler != SIG_IGN)
        ::sigaction(kSignals[i], &sa, nullptr);
  }
  ~DealSignals() {
    for (size_t i = 0; i < 2; ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
  }
  DealSignals(const DealSignals&) = delete;
  DealSignals& operator=(const DealSignals&) = delete;
  static bool caught() { return g_deal_signal != 0; }
  [[noreturn]] static void die() {
    std::signal(g_deal_signal, SIG_DFL);
    std::raise(g_deal_signal);
    std::_Exit(128 + g_deal_signal);
  }

 private:
  static constexpr int kSignals[2] = {SIGINT, SIGTERM};
  struct sigaction old_[2] {};
};

// HOST:PORT, [IPV6]:PORT; the port is all digits, 1..65535.
std::pair<std::string, int> parse_host_port(const std::string& s) {
  const auto colon = s.rfind(':');
  const auto bad = [&] { return UsageError("--connect '" + s + "' is not HOST:PORT (PORT 1..65535; [ADDR]:PORT for IPv6)"); };
  if (colon == std::string::npos || colon == 0) throw bad();
  const std::string digits = s.substr(colon + 1);
  int port = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port < 1 || port > 65535) throw bad();
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host.find_first_of("[]") != std::string::npos) throw bad();
  return {host, port};
}

void check_batch(int64_t batch) {
  if (batch < 1 || uint64_t(batch) > mpc::kMaxBatch)
    throw UsageError("--batch must be in 1.." + std::to_string(mpc::kMaxBatch));
}

std::string batch_option_help() {
  return "Images per batch (1.." + std::to_string(mpc::kMaxBatch) + "): each message carries the batch's shares, so a "
         "batch takes one image's rounds; each party holds the batch's key blocks at once";
}

// A party's key file, opened once (a named pipe from `pi deal --stream`
// cannot be opened twice), and the architecture it was dealt for.
std::shared_ptr<mpc::KeyFile> open_keys(const std::string& path, double timeout_s) {
  return std::make_shared<mpc::KeyFile>(path, timeout_s);
}
mpc::Architecture key_architecture(const mpc::KeyFile& keys) {
  return mpc::parse_architecture(keys.header().architecture);
}

// RUN: a finished run, or a model file with its normalisation (PiModel).
constexpr const char* kRunHelp = "Finished run directory, or a model file (model.onnx; with --mean and --std)";
void add_model_options(CLI::App* cmd, std::string* path, std::vector<double>* mean, std::vector<double>* stdev) {
  cmd->add_option("RUN", *path, kRunHelp)->required();
  cmd->add_option("--mean", *mean,
                  "A model file's input normalisation, per channel in [0,1] units (e.g. 0.2860; 0 with --std 1: "
                  "none); a run normalises as it was trained")
      ->delimiter(',');
  cmd->add_option("--std", *stdev, "Likewise its standard deviations")->delimiter(',');
}

void deal_command(CLI::App& pi) {
  struct Opts {
    std::string run, out, format = "table", relu_gate = "dcf";
    int64_t count = 1;
    int frac_bits = mpc::kDefaultFracBits, threads = 1;
    bool stream = false;
    double timeout = 60;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = pi.add_subcommand("deal", "Dealer: write server.key and client.key for COUNT inferences of RUN's architecture "
                                        "(it reads the architecture only, never the weights)");
  cmd->add_option("RUN", o->run, kRunHelp)->required();
  cmd->add_option("--out", o->out, "Key directory to write")->required();
  cmd->add_option("--count", o->count, "Inferences the keys are for (each key block is used once)")->capture_default_str();
  cmd->add_option("--frac-bits", o->frac_bits, "Fixed-point fractional bits f (1..16)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Dealer threads")->capture_default_str();
  cmd->add_option("--relu-gate", o->relu_gate, relu_gate_option_help())->capture_default_str();
  cmd->add_option("--format", o->format, "Output: table or json")->capture_default_str();
  cmd->add_flag("--stream", o->stream,
                "Write into the named pipes OUT/server.key and OUT/client.key (mkfifo) as pi serve and pi client "
                "read them: no key touches the disk");
  cmd->add_option("--timeout", o->timeout, "--stream: seconds to wait for a party to read before failing")
      ->capture_default_str();
  cmd->callback([o] {
    if (o->count < 1) throw UsageError("--count must be >= 1");
    if (!(o->timeout > 0 && o->timeout <= 86400)) throw UsageError("--timeout must be in (0, 86400] seconds");
    if (pipeline::is_auto_relu_gate(o->relu_gate))
      throw UsageError("--relu-gate " + o->relu_gate + ": the dealer sees no data to choose N from; choose it with "
                       "`deepreduce pi calibrate RUN --data D` (pi run --relu-gate " + o->relu_gate + " does both)");
    const mpc::ReluGateChoice gate = parse_relu_gate_option(o->relu_gate);
    check_table_or_json(o->format);
    if (o->threads < 1 || o->threads > 256) throw UsageError("--threads must be in 1..256");
    if (!o->stream) pipeline::check_key_dir(o->out, "--out");
    mpc::Architecture arch = pipeline::run_architecture(o->run);
    arch.relu_gate = gate;
    const DealSignals signals;
    mpc::DealReport r;
    try {
      mpc::DealOptions d;
      d.frac_bits = o->frac_bits;
      d.count = uint64_t(o->count);
      d.out_dir = o->out;
      d.threads = o->threads;
      d.interrupted = &DealSignals::caught;
      d.stream = o->stream;
      d.stream_timeout_s = o->timeout;
      r = mpc::deal(arch, d);
    } catch (const mpc::DealInterrupted& e) {
      std::cerr << "pi deal: " << e.what() << "\n";
      DealSignals::die();
    }
    if (o->format == "json") {
      std::cout << with_trust_model(mpc::to_json(r)).dump(2) << "\n";
      return;
    }
    std::cout << "dealt " << r.count << " inferences of " << o->run << " (" << report::thousands(r.live_relus)
              << " live ReLUs, f = " << r.frac_bits << ", ReLU gate " << mpc::relu_gate_name(gate) << ") in " << report::fixed(r.seconds, 2) << " s"
              << (r.streamed ? " (" + report::fixed(r.stream_wait_s, 2) + " s of it waiting for the parties to read)" : "")
              << "\n  " << r.server_path << ": " << report::bytes(double(r.server_file_bytes))
              << (r.streamed ? " streamed" : "") << "\n  " << r.client_path << ": "
              << report::bytes(double(r.client_file_bytes)) << (r.streamed ? " streamed" : "")
              << "\nTrust model: " << pipeline::kTrustModel << ".\n";
  });
}

void serve_command(CLI::App& pi) {
  struct Opts {
    pipeline::PiModel model;
    std::string keys, bind = "127.0.0.1";
    int port = 0;
    PartyFlags flags;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = pi.add_subcommand("serve", "Server: hold RUN's weights and answer one client session");
  add_model_options(cmd, &o->model.path, &o->model.mean, &o->model.std);
  cmd->add_option("--keys", o->keys, "The server's key file (KEYS/server.key)")->required();
  cmd->add_option("--port", o->port, "TCP port (0: any free port; printed as 'listening on ADDR:PORT')")
      ->capture_default_str();
  cmd->add_option("--bind", o->bind, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  o->flags.add(cmd);
  cmd->callback([o] {
    o->flags.check();
    mpc::Architecture a = pipeline::run_architecture(o->model.path);
    const mpc::FloatModel weights = pipeline::run_float_model(o->model);
    const auto keys = open_keys(o->keys, o->flags.timeout);
    const mpc::Architecture k = key_architecture(*keys);
    a.relu_gate = k.relu_gate;  // the dealer's choice of comparison; the weights do not depend on it
    if (mpc::serialize_architecture(a) != mpc::serialize_architecture(k))
      throw UsageError("keys '" + o->keys + "' were dealt for " + k.spec + " on " + k.input.str() + ", not for '" +
                       o->model.path + "' (" + a.spec + " on " + a.input.str() + ")");
    mpc::ServerOptions so;
    so.key_path = o->keys;
    so.keys = keys;
    so.bind_address = o->bind;
    so.port = o->port;
    so.timeout_s = o->flags.timeout;
    so.accept_timeout_s = o->flags.timeout;
    so.threads = o->flags.threads;
    so.state_dir = o->flags.state_dir;
    so.on_listening = [o](int port) { std::cout << "listening on " << o->bind << ":" << port << std::endl; };
    const mpc::ServerReport r = mpc::serve(weights, so);
    if (o->flags.format == "json")
      std::cout << with_trust_model(mpc::to_json(r)).dump() << "\n";
    else
      std::cout << "served " << r.server.inferences << " inferences; the client has the measurements of both parties\n"
                << "Trust model: " << pipeline::kTrustModel << ".\n";
  });
}

void client_command(CLI::App& pi) {
  struct Opts {
    std::string keys, connect, data;
    int64_t count = 1, batch = 1;
    PartyFlags flags;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = pi.add_subcommand("client", "Client: hold the images, run COUNT private inferences with a server");
  cmd->add_option("--keys", o->keys, "The client's key file (KEYS/client.key)")->required();
  cmd->add_option("--connect", o->connect, "The server, HOST:PORT")->required();
  cmd->add_option("--data", o->data, data_option_help() + "; its first COUNT test images")->required();
  cmd->add_option("--count", o->count, "Images")->capture_default_str();
  cmd->add_option("--batch", o->batch, batch_option_help())->capture_default_str();
  o->flags.add(cmd);
  cmd->callback([o] {
    o->flags.check();
    check_batch(o->batch);
    const auto [host, port] = parse_host_port(o->connect);
    const auto keys = open_keys(o->keys, o->flags.timeout);
    const mpc::Architecture a = key_architecture(*keys);
    const auto images = pipeline::client_images(o->data, o->count, a.input);
    mpc::ClientOptions co;
    co.key_path = o->keys;
    co.keys = keys;
    co.host = host;
    co.port = port;
    co.count = o->count;
    co.batch = o->batch;
    co.timeout_s = o->flags.timeout;
    co.threads = o->flags.threads;
    co.state_dir = o->flags.state_dir;
    co.image = [o, &images](int64_t i) {
      if (!o->flags.quiet) std::cerr << "\rprivate inference: image " << i + 1 << "/" << images.size() << "   " << std::flush;
      return images[static_cast<size_t>(i)];
    };
    const mpc::ClientReport r = mpc::run_client(co);
    if (!o->flags.quiet) std::cerr << "\n";
    const nlohmann::json s = pipeline::session_summary(r, a, o->flags.threads);
    std::cout << (o->flags.format == "json" ? s.dump(2) + "\n" : pipeline::summary_table(s));
  });
}

void run_command(CLI::App& pi) {
  struct Opts {
    pipeline::PiRunOptions run;
    PartyFlags flags;
    std::string relu_gate = "dcf";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = pi.add_subcommand("run", "Dealer, server and client as three processes on 127.0.0.1: run COUNT images "
                                       "privately and measure bytes, rounds and seconds");
  add_model_options(cmd, &o->run.run, &o->run.mean, &o->run.std);
  cmd->add_option("--data", o->run.data, data_option_help() + "; its first COUNT test images")->required();
  cmd->add_option("--count", o->run.count, "Images")->capture_default_str();
  cmd->add_option("--batch", o->run.batch, batch_option_help())->capture_default_str();
  cmd->add_flag("--deal-first", o->run.deal_first,
                "Without --keys: deal every key into a temporary directory before the parties start (removed "
                "afterwards), so the dealer's work does not share the cores with the online phase; default: the "
                "dealer streams the keys to the parties as they run, none on disk");
  cmd->add_option("--frac-bits", o->run.frac_bits, "Fixed-point fractional bits f (1..16)")->capture_default_str();
  cmd->add_option("--keys", o->run.keys, "Key directory (default: a temporary one, removed afterwards)");
  cmd->add_option("--relu-gate", o->relu_gate,
                  relu_gate_option_help() + "; or dcf:auto / dpf:auto: N from the training images (--calibrate)")
      ->capture_default_str();
  cmd->add_option("--calibrate", o->run.calibration_images,
                  "With --relu-gate dcf:auto or dpf:auto: the training images of --data the width is chosen from")
      ->capture_default_str();
  cmd->add_option("--margin-bits", o->run.margin_bits,
                  "With --relu-gate dcf:auto or dpf:auto: bits of headroom above the largest input seen")
      ->capture_default_str();
  o->flags.add(cmd);
  cmd->callback([o] {
    o->flags.check();
    check_batch(o->run.batch);
    if (pipeline::is_auto_relu_gate(o->relu_gate))
      o->run.auto_gate = o->relu_gate;
    else
      o->run.relu_gate = parse_relu_gate_option(o->relu_gate);
    o->run.threads = o->flags.threads;
    o->run.timeout_s = o->flags.timeout;
    o->run.quiet = o->flags.quiet;
    o->run.state_dir = o->flags.state_dir;
    const nlohmann::json s = pipeline::run_private_inference(o->run);
    std::cout << (o->flags.format == "json" ? s.dump(2) + "\n" : pipeline::summary_table(s));
  });
}

// `pi calibrate`: the ReLU inputs over training images, and what each gate
// would cost at the width they call for.
void calibrate_command(CLI::App& pi) {
  struct Opts {
    pipeline::PiModel model;
    std::string data, format = "table";
    int64_t count = pipeline::kDefaultCalibrationImages;
    int frac_bits = mpc::kDefaultFracBits, margin_bits = pipeline::kDefaultMarginBits;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = pi.add_subcommand("calibrate", "Choose the width of a reduced-width ReLU gate (--relu-gate dcf:N, dpf:N) "
                                             "from RUN's ReLU inputs over training images, in the clear");
  add_model_options(cmd, &o->model.path, &o->model.mean, &o->model.std);
  cmd->add_option("--data", o->data, data_option_help() + "; its first COUNT training images")->required();
  cmd->add_option("--count", o->count, "Training images")->capture_default_str();
  cmd->add_option("--margin-bits", o->margin_bits, "Bits of headroom above the largest input seen")->capture_default_str();
  cmd->add_option("--frac-bits", o->frac_bits, "Fixed-point fractional bits f (1..16)")->capture_default_str();
  cmd->add_option("--format", o->format, "Output: table or json")->capture_default_str();
  cmd->callback([o] {
    check_table_or_json(o->format);
    const pipeline::Calibration c =
        pipeline::calibrate_relu_width(o->model, o->data, o->count, o->frac_bits, o->margin_bits);
    mpc::Architecture arch = pipeline::run_architecture(o->model.path);
    nlohmann::json gates = nlohmann::json::array();
    for (const std::string g : {"dcf", "dcf:auto", "dpf:auto"}) {
      arch.relu_gate = pipeline::calibrated_relu_gate(g, c);
      const mpc::ExpectedCost e = mpc::expected_cost(arch);
      gates.push_back({{"relu_gate", mpc::relu_gate_name(arch.relu_gate)},
                       {"rounds", e.rounds},
                       {"online_bytes", e.online_bytes},
                       {"key_bytes", {{"server", e.server_key_bytes}, {"client", e.client_key_bytes}}}});
    }
    nlohmann::json j = pipeline::to_json(c);
    j["gates"] = gates;
    if (o->format == "json") {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::cout << "largest ReLU input over the first " << c.images << " training images of " << c.data << ": "
              << report::fixed(c.largest, 3) << " (" << report::thousands(int64_t(c.largest_fixed)) << " at f = "
              << c.frac_bits << "): " << c.bits_needed << " bits hold it; with " << c.margin_bits
              << " bits of margin: N = " << c.bits << "\n";
    report::Table t({{"gate", "ReLU gate"}, {"rounds", "rounds", true}, {"mb", "online MB", true},
                     {"key", "key MB per image (server / client)", true}});
    for (const auto& g : gates)
      t.add_row({g["relu_gate"], g["rounds"], report::fixed(g["online_bytes"].get<double>() / 1e6, 2),
                 report::fixed(g["key_bytes"]["server"].get<double>() / 1e6, 1) + " / " +
                     report::fixed(g["key_bytes"]["client"].get<double>() / 1e6, 1)});
    std::cout << t.render(report::Format::Table)
              << "A test set is not what a deployment sees: pi run counts the inputs outside the chosen range.\n";
  });
}

}  // namespace

void add_pi_commands(CLI::App& app) {
  auto* pi = app.add_subcommand("pi", "Private inference of a trained run: semi-honest 2PC with a non-colluding dealer "
                                      "(deal, serve, client, or all three with run)");
  pi->require_subcommand(1);
  deal_command(*pi);
  serve_command(*pi);
  client_command(*pi);
  run_command(*pi);
  calibrate_command(*pi);
}

}  // namespace dr::cli
