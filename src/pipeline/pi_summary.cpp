// The summary of a private-inference session that every `deepreduce pi`
// command prints, as JSON and as text.
#include "arch/spec.h"
#include "mpc/cost.h"
#include "mpc/keys.h"
#include "mpc/program.h"
#include "pi/cost.h"
#include "pi/private_cost.h"
#include "pipeline/private_inference.h"
#include "report/format.h"
#include "report/table.h"
#include "train/provenance.h"

namespace dr::pipeline {

namespace {

using nlohmann::json;

// The measured loopback time plus the link's part (pi::link_seconds): per
// image, a batch's rounds and bytes shared by its images, and a batch's
// latency (`batch` images: one image's rounds, their bytes).
json modelled(const pi::Link& l, double seconds_per_image, double batch_latency_s, int64_t rounds, double batch,
              double up, double down) {
  const double link_batch = pi::link_seconds(l, static_cast<double>(rounds), batch * std::max(up, down));
  return {{"bits_per_s", l.bits_per_s},
          {"rtt_s", l.rtt_s},
          {"seconds_per_image", seconds_per_image + link_batch / batch},
          {"batch_latency_s", batch_latency_s + link_batch}};
}

// Per layer and per image; the key bytes come from the program's key layout
// (what the dealer wrote for that step), the rest is measured.
json layer_rows(const mpc::ClientReport& r, const mpc::Architecture& a) {
  const double n = std::max<double>(1, static_cast<double>(r.images.size()));
  const double batches = std::max<double>(1, static_cast<double>(r.client.batches));  // a batch's rounds are its images'
  const mpc::Program program = mpc::compile_program(a, mpc::ProgramDetail::Counts);
  const auto server_keys = mpc::step_key_bytes(program, mpc::Party::Server);
  const auto client_keys = mpc::step_key_bytes(program, mpc::Party::Client);
  const auto keys_of = [](const std::vector<uint64_t>& k, size_t i) { return i < k.size() ? k[i] : uint64_t(0); };
  json rows = json::array();
  for (size_t i = 0; i < r.client.layers.size(); ++i) {
    const mpc::LayerRecord& c = r.client.layers[i];
    const mpc::LayerRecord* s = i < r.server.layers.size() ? &r.server.layers[i] : nullptr;
    const mpc::Step* step = i < program.steps.size() ? &program.steps[i] : nullptr;
    rows.push_back({{"name", c.name},
                    {"kind", c.kind},
                    {"live_relus", static_cast<double>(c.live_relus) / n},
                    // A gate step's live elements: ReLUs or polynomial elements, as `kind` says.
                    {"elements", step && step->kind == mpc::StepKind::Gate ? step->live_count : 0},
                    {"bytes", static_cast<double>(c.bytes_sent + c.bytes_received) / n},
                    {"client_to_server", static_cast<double>(c.bytes_sent) / n},
                    {"server_to_client", static_cast<double>(c.bytes_received) / n},
                    {"rounds", static_cast<double>(c.rounds) / batches},
                    {"key_bytes", {{"server", keys_of(server_keys, i)}, {"client", keys_of(client_keys, i)}}},
                    {"seconds", (c.compute_s + c.wait_s) / n},
                    {"compute_s", {{"client", c.compute_s / n}, {"server", s ? s->compute_s / n : 0.0}}},
                    {"wait_s", {{"client", c.wait_s / n}, {"server", s ? s->wait_s / n : 0.0}}}});
  }
  return rows;
}

int64_t gate_elements(const mpc::ExpectedCost& c, const std::string& gate) {
  for (const auto& g : c.gates)
    if (g.gate == gate) return g.elements;
  return 0;
}

json cost_estimates(const mpc::Architecture& a) {
  const pi::CostModel model = pi::load_cost_model();
  const auto protocols = pi::select_protocols(model, "all");
  const pi::NetworkCost c = pi::estimate(mpc::build_network(a), model, protocols);
  json out = {{"source", model.path}, {"ring_bits", model.ring_bits}, {"protocols", json::object()}};
  for (const auto& p : c.per_protocol)
    out["protocols"][p.protocol] = {{"bytes", c.total_bytes(p)},
                                    {"relu_seconds", p.relu_seconds ? json(*p.relu_seconds) : json()}};
  return out;
}

}  // namespace

json session_summary(const mpc::ClientReport& r, const mpc::Architecture& a, int threads) {
  const auto n = static_cast<int64_t>(r.images.size());
  const double nd = std::max<double>(1, static_cast<double>(n));
  int64_t labelled = 0, correct = 0, rounds = 0;
  uint64_t bytes = 0, framing = 0;
  double online = 0, latency_sum = 0;
  json predictions = json::array();
  for (const auto& im : r.images) {
    labelled += im.label >= 0;
    correct += im.label >= 0 && im.argmax == im.label;
    bytes += im.bytes;
    framing += im.framing_bytes;
    online += im.online_s;
    latency_sum += im.batch_online_s;
    rounds = im.rounds;
    predictions.push_back({{"label", im.label}, {"argmax", im.argmax}, {"logits_fixed", im.logits_fixed}});
  }
  const double up = static_cast<double>(r.client.online.bytes_sent) / nd;
  const double down = static_cast<double>(r.client.online.bytes_received) / nd;
  const double per_image = online / nd, latency = latency_sum / nd;
  // The batch size a user asked for, and the mean batch the images ran in
  // (the last batch may be smaller): what the modelled link time is shared by.
  const int64_t batch = r.client.batch;
  const double mean_batch = r.client.batches > 0 ? nd / static_cast<double>(r.client.batches) : 1.0;
  return {
      {"spec", r.spec},
      {"input", a.input.str()},
      {"classes", a.classes},
      {"trust_model", kTrustModel},
      {"ring_bits", mpc::kRingBits},
      {"frac_bits", r.frac_bits},
      {"model_hash", r.model_hash},
      {"relus", r.expected.live_relus},
      {"polys", gate_elements(r.expected, "poly")},
      {"max_comparisons", gate_elements(r.expected, "maxpool")},
      {"relu_gate", mpc::relu_gate_name(a.relu_gate)},
      {"images", n},
      {"accuracy", labelled ? json(static_cast<double>(correct) / labelled) : json()},
      {"agreement", json()},
      {"online_bytes", bytes},
      {"online_bytes_per_image", static_cast<double>(bytes) / nd},
      {"online_framing_bytes", framing},
      {"client_to_server_bytes_per_image", up},
      {"server_to_client_bytes_per_image", down},
      {"rounds", rounds},
      {"seconds_per_image", per_image},
      {"batch", batch},
      {"batch_latency_s", latency},
      {"images_per_second", per_image > 0 ? json(1.0 / per_image) : json()},
      {"preprocessing_s_per_image",
       {{"client", r.client.preprocessing_s / nd}, {"server", r.server.preprocessing_s / nd}}},
      {"key_bytes", {{"server", r.server.key_bytes_per_inference * n}, {"client", r.client.key_bytes_per_inference * n}}},
      {"key_bytes_per_image",
       {{"server", r.server.key_bytes_per_inference}, {"client", r.client.key_bytes_per_inference}}},
      {"setup_bytes", r.client.setup.bytes_sent + r.client.setup.bytes_received},
      {"peak_memory_bytes", {{"server", r.server.peak_rss_bytes}, {"client", r.client.peak_rss_bytes}}},
      {"expected", {{"online_bytes_per_image", r.expected.online_bytes}, {"rounds", r.expected.rounds}}},
      {"modelled",
       {{"lan", modelled(pi::kLan, per_image, latency, rounds, mean_batch, up, down)},
        {"wan", modelled(pi::kWan, per_image, latency, rounds, mean_batch, up, down)}}},
      {"estimates", cost_estimates(a)},
      {"layers", layer_rows(r, a)},
      {"predictions", predictions},
      {"provenance", train::provenance("cpu", threads)}};
}

namespace {

std::string mb(double bytes) { return report::fixed(bytes / 1e6, 2) + " MB"; }
std::string secs(double s) { return report::fixed(s, s < 1 ? 3 : 2) + " s"; }

report::Table layers_table(const json& layers) {
  report::Table t({{"name", "layer"},
                   {"kind", "kind"},
                   {"relus", "gate elements", true},
                   {"up", "client->server", true},
                   {"down", "server->client", true},
                   {"rounds", "rounds", true},
                   {"sk", "server key KB", true},
                   {"ck", "client key KB", true},
                   {"cc", "client compute ms", true},
                   {"cw", "client wait ms", true},
                   {"sc", "server compute ms", true},
                   {"sw", "server wait ms", true}});
  std::vector<double> total(10, 0.0);
  for (const auto& l : layers) {
    // Older summaries (before per-layer key bytes) show 0 there.
    const auto keys = [&](const char* p) { return l.contains("key_bytes") ? l["key_bytes"][p].get<double>() / 1e3 : 0.0; };
    // Older summaries (before polynomial gates) count the ReLUs only.
    const double elements = l.contains("elements") ? l["elements"].get<double>() : l["live_relus"].get<double>();
    const std::vector<double> v = {elements,                               l["client_to_server"].get<double>(),
                                   l["server_to_client"].get<double>(),    l["rounds"].get<double>(),
                                   keys("server"),                         keys("client"),
                                   1e3 * l["compute_s"]["client"].get<double>(), 1e3 * l["wait_s"]["client"].get<double>(),
                                   1e3 * l["compute_s"]["server"].get<double>(), 1e3 * l["wait_s"]["server"].get<double>()};
    for (size_t i = 0; i < v.size(); ++i) total[i] += v[i];
    t.add_row({l["name"], l["kind"], v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]});
  }
  t.add_row({"total", "", total[0], total[1], total[2], total[3], total[4], total[5], total[6], total[7], total[8],
             total[9]});
  for (const char* k : {"sk", "ck"})
    t.set_display(k, [](const json& v) { return report::fixed(v.get<double>(), 1); });
  for (const char* k : {"relus", "up", "down", "rounds"})
    t.set_display(k, [](const json& v) { return report::thousands(std::llround(v.get<double>())); });
  for (const char* k : {"cc", "cw", "sc", "sw"})
    t.set_display(k, [](const json& v) { return report::fixed(v.get<double>(), 2); });
  return t;
}

std::string accuracy_line(const json& s) {
  std::string line;
  if (!s["accuracy"].is_null()) line += "accuracy " + report::fixed(s["accuracy"].get<double>(), 4);
  if (!s["agreement"].is_null()) {
    line += "; agreement with the plaintext float model " + report::fixed(s["agreement"].get<double>(), 4);
    // Disagreements the fixed-point reference shares: near-ties of the float
    // model inside the quantisation's error, not protocol errors.
    std::string ties;
    int64_t n = 0, tied = 0;
    for (const json& d : s.value("float_disagreements", json::array())) {
      ++n;
      if (d["private"] != d["fixed_reference"]) continue;
      ++tied;
      ties += (ties.empty() ? "" : ", ") + report::fixed(d["float_margin"].get<double>(), 4);
    }
    if (n > 0)
      line += " (of " + std::to_string(n) + (n == 1 ? " disagreement, " : " disagreements, ") + std::to_string(tied) +
              (tied == 1 ? " is a near-tie" : " are near-ties") + " of the float model that the fixed-point reference " +
              "shares" + (tied > 0 ? ", float margins " + ties : std::string()) +
              (n > tied ? "; " + std::to_string(n - tied) + " not explained by quantisation" : std::string()) + ")";
    if (s.contains("reference"))
      line += ", with the fixed-point reference " + report::fixed(s["reference"]["agreement"].get<double>(), 4) +
              " (" + std::to_string(s["reference"]["failures"].get<int64_t>()) + " truncation failures, largest logit "
              "difference " + report::fixed(s["reference"]["max_abs_logit_diff"].get<double>(), 4) + ")";
  }
  return line.empty() ? "" : line + "\n";
}

// The comparisons' inputs in the fixed-point reference: the largest, the
// narrowest dpf gate that holds it, and those outside the gate run.
std::string comparison_line(const json& s) {
  if (!s.contains("comparison_inputs")) return "";
  std::string out;
  if (s.contains("calibration")) {
    const json& k = s["calibration"];
    out = "calibration: largest ReLU input " + report::fixed(k["largest"].get<double>(), 3) + " over the first " +
          std::to_string(k["images"].get<int64_t>()) + " training images: " +
          std::to_string(k["bits_needed"].get<int>()) + " bits hold it, " + std::to_string(k["margin_bits"].get<int>()) +
          " bits of margin: " + s.value("relu_gate", std::string("dcf")) + "\n";
  }
  const json& c = s["comparison_inputs"];
  const int64_t outside = c["out_of_range"].get<int64_t>();
  return out + "comparisons: largest input |x| " + report::fixed(c["largest"].get<double>(), 3) + " (the narrowest gate " +
         "that holds it: dpf:" + std::to_string(c["bits_needed"].get<int>()) + "); " + report::thousands(outside) +
         " input" + (outside == 1 ? "" : "s") + " outside what " + c["relu_gate"].get<std::string>() +
         " compares exactly" + (outside > 0 ? " (their sign read from the low bits, as the reference does)" : "") +
         "\n";
}

}  // namespace

std::string summary_table(const json& s) {
  const json& est = s["estimates"]["protocols"];
  std::string estimates;
  for (auto it = est.begin(); it != est.end(); ++it)
    estimates += (estimates.empty() ? "" : ", ") + it.key() + " " + mb(it.value()["bytes"].get<double>()) +
                 (it.value()["relu_seconds"].is_null() ? "" : " / " + secs(it.value()["relu_seconds"].get<double>()));
  const auto per_image = [&](const char* k, const char* p) { return s[k][p].get<double>(); };
  std::string out = "Private inference of " + s["spec"].get<std::string>() + " (" + s["input"].get<std::string>() + ", " +
                    std::to_string(s["classes"].get<int64_t>()) + " classes): " +
                    std::to_string(s["images"].get<int64_t>()) + " images, " +
                    report::thousands(s["relus"].get<int64_t>()) + " live ReLUs" +
                    (s.value("polys", int64_t(0)) > 0
                         ? ", " + report::thousands(s["polys"].get<int64_t>()) + " polynomial elements"
                         : std::string()) +
                    (s.value("max_comparisons", int64_t(0)) > 0
                         ? ", " + report::thousands(s["max_comparisons"].get<int64_t>()) +
                               " max-pooling comparisons (each a ReLU gate)"
                         : std::string()) +
                    ", Z_2^64 with " +
                    std::to_string(s["frac_bits"].get<int>()) + " fractional bits, ReLU gate " +
                    s.value("relu_gate", std::string("dcf")) + "\n";
  out += "Trust model: " + s["trust_model"].get<std::string>() + ".\n" + accuracy_line(s) + comparison_line(s);
  const int64_t batch = s.value("batch", int64_t(1));
  const std::string batched =
      batch > 1 ? "; in batches of " + std::to_string(batch) + ": a batch's latency " +
                      secs(s["batch_latency_s"].get<double>()) + ", " +
                      report::fixed(s["images_per_second"].get<double>(), 1) + " images/s"
                : std::string();
  out += "per image:  online " + secs(s["seconds_per_image"].get<double>()) + " (loopback" + batched + "), " +
         mb(s["online_bytes"].get<double>() / std::max<double>(1, s["images"].get<double>())) + " (client->server " +
         mb(s["client_to_server_bytes_per_image"].get<double>()) + ", server->client " +
         mb(s["server_to_client_bytes_per_image"].get<double>()) + "), " + std::to_string(s["rounds"].get<int64_t>()) +
         " rounds; exact formula " + mb(s["expected"]["online_bytes_per_image"].get<double>()) + ", " +
         std::to_string(s["expected"]["rounds"].get<int64_t>()) + " rounds" +
         (batch > 1 ? " (the rounds are a batch's, shared by its images)" : "") + "\n";
  out += "            preprocessing " + secs(per_image("preprocessing_s_per_image", "client")) + " client, " +
         secs(per_image("preprocessing_s_per_image", "server")) + " server; keys " +
         mb(per_image("key_bytes_per_image", "server")) + " server, " + mb(per_image("key_bytes_per_image", "client")) +
         " client\n";
  if (s.contains("bill_per_image")) {
    const json& b = s["bill_per_image"];
    out += "whole bill: dealer " + secs(b["dealer_s"].get<double>()) + " + preprocessing " +
           secs(std::max(b["preprocessing_s"]["client"].get<double>(), b["preprocessing_s"]["server"].get<double>())) +
           " (the slower party) = offline " + secs(b["offline_s"].get<double>()) + ", online " +
           secs(b["online_s"].get<double>()) + (b["offline_per_online"].is_null() ? std::string() :
                " (offline " + report::fixed(b["offline_per_online"].get<double>(), 1) + "x online)") +
           "; keys shipped " + mb(b["key_bytes"].get<double>()) + " per image" +
           (b.value("keys_streamed", false) ? " (streamed to the parties, none on disk)" : " (key files on disk)") +
           (b.contains("elapsed_s") ? "; the run took " + secs(b["elapsed_s"].get<double>()) + " per image in all" : "") +
           "\n";
  }
  out += std::string("modelled:   ") + pi::kLan.text + " " + secs(s["modelled"]["lan"]["seconds_per_image"].get<double>()) +
         ", " + pi::kWan.text + " " + secs(s["modelled"]["wan"]["seconds_per_image"].get<double>()) + " per image" +
         (batch > 1 ? " (a batch: " + secs(s["modelled"]["lan"]["batch_latency_s"].get<double>()) + " LAN, " +
                          secs(s["modelled"]["wan"]["batch_latency_s"].get<double>()) + " WAN)"
                    : std::string()) +
         "\n";
  out += "session:    setup " + mb(s["setup_bytes"].get<double>()) +
         (s.value("polys", int64_t(0)) > 0 ? " (W^ and the masked coefficients a^, b^, once), peak memory "
                                            : " (W^, once), peak memory ") +
         mb(per_image("peak_memory_bytes", "server")) + " server, " + mb(per_image("peak_memory_bytes", "client")) +
         " client";
  if (s.contains("dealer")) {
    out += ", dealer " + secs(s["dealer"]["seconds"].get<double>()) + " for " +
           std::to_string(s["images"].get<int64_t>()) + " images";
    if (s["dealer"].value("streamed", false))
      out += " (" + secs(s["dealer"]["stream_wait_s"].get<double>()) + " of it waiting for the parties to read)";
  }
  out += "\nestimates:  `deepreduce cost` per image (not measured; other protocols, " +
         std::to_string(s["estimates"]["ring_bits"].get<int>()) + "-bit ring: ReLU traffic plus the sharing of every linear layer's input" +
         (s.value("polys", int64_t(0)) > 0 ? " and a Beaver multiplication per polynomial element" : "") +
         (s.value("max_comparisons", int64_t(0)) > 0 ? "; max pooling's comparisons not included" : "") + "): " +
         estimates + "\n\n";
  return out + layers_table(s["layers"]).render(report::Format::Table);
}

}  // namespace dr::pipeline
