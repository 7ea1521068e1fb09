#include "mpc/report.h"

#include <sys/resource.h>

namespace dr::mpc {

using nlohmann::json;

LayerRecord& LayerRecord::operator+=(const LayerRecord& o) {
  live_relus += o.live_relus;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  framing_sent += o.framing_sent;
  framing_received += o.framing_received;
  rounds += o.rounds;
  compute_s += o.compute_s;
  wait_s += o.wait_s;
  return *this;
}

json to_json(const LayerRecord& r, int64_t per, int64_t batches) {
  const int64_t round_per = batches > 0 ? batches : per;
  const double d = per > 0 ? static_cast<double>(per) : 1.0;
  const auto n = [&](uint64_t v) { return per > 0 ? v / static_cast<uint64_t>(per) : v; };
  return {{"name", r.name},
          {"kind", r.kind},
          {"live_relus", per > 0 ? r.live_relus / per : r.live_relus},
          {"bytes_sent", n(r.bytes_sent)},
          {"bytes_received", n(r.bytes_received)},
          {"framing_sent", n(r.framing_sent)},
          {"framing_received", n(r.framing_received)},
          {"rounds", round_per > 0 ? r.rounds / round_per : r.rounds},
          {"compute_s", r.compute_s / d},
          {"wait_s", r.wait_s / d}};
}

json to_json(const PartyReport& r) {
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(to_json(l, r.inferences, r.batches));
  const double d = r.inferences > 0 ? static_cast<double>(r.inferences) : 1.0;
  return {{"party", r.party},
          {"inferences", r.inferences},
          {"batch", r.batch},
          {"batches", r.batches},
          {"first_inference", r.first_inference},
          {"per_image", {{"online", to_json(r.online, r.inferences, r.batches)},
                         {"online_s", r.online_s / d},
                         {"preprocessing_s", r.preprocessing_s / d},
                         {"key_wait_s", r.key_wait_s / d},
                         {"key_bytes", r.key_bytes_per_inference}}},
          {"key_streamed", r.key_streamed},
          {"layers", layers},
          {"setup", to_json(r.setup, 1)},
          {"key_file_bytes", r.key_file_bytes},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"threads", r.threads}};
}

json to_json(const ImageResult& r) {
  return {{"index", r.index}, {"key_index", r.key_index}, {"label", r.label}, {"argmax", r.argmax},
          {"logits", r.logits}, {"online_s", r.online_s}, {"batch", r.batch}, {"batch_online_s", r.batch_online_s},
          {"preprocessing_s", r.preprocessing_s},
          {"bytes", r.bytes}, {"framing_bytes", r.framing_bytes}, {"rounds", r.rounds}};
}

json to_json(const ClientReport& r) {
  json images = json::array();
  for (const auto& i : r.images) images.push_back(to_json(i));
  return {{"model_hash", r.model_hash}, {"spec", r.spec}, {"frac_bits", r.frac_bits}, {"ring_bits", 64},
          {"images", images}, {"client", to_json(r.client)}, {"server", to_json(r.server)},
          {"expected", to_json(r.expected)}};
}

json to_json(const ServerReport& r) {
  return {{"port", r.port}, {"model_hash", r.model_hash}, {"server", to_json(r.server)}};
}

namespace {

json raw(const LayerRecord& r) {
  return {r.name, r.kind, r.live_relus, r.bytes_sent, r.bytes_received, r.framing_sent,
          r.framing_received, r.rounds, r.compute_s, r.wait_s};
}

LayerRecord unraw(const json& j) {
  LayerRecord r;
  r.name = j.at(0).get<std::string>();
  r.kind = j.at(1).get<std::string>();
  r.live_relus = j.at(2).get<int64_t>();
  r.bytes_sent = j.at(3).get<uint64_t>();
  r.bytes_received = j.at(4).get<uint64_t>();
  r.framing_sent = j.at(5).get<uint64_t>();
  r.framing_received = j.at(6).get<uint64_t>();
  r.rounds = j.at(7).get<int64_t>();
  r.compute_s = j.at(8).get<double>();
  r.wait_s = j.at(9).get<double>();
  return r;
}

}  // namespace

json party_records(const PartyReport& r) {
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(raw(l));
  return {{"party", r.party}, {"inferences", r.inferences}, {"first_inference", r.first_inference},
          {"layers", layers}, {"online", raw(r.online)}, {"preprocessing_s", r.preprocessing_s},
          {"online_s", r.online_s}, {"setup", raw(r.setup)}, {"key_file_bytes", r.key_file_bytes},
          {"key_bytes_per_inference", r.key_bytes_per_inference}, {"peak_rss_bytes", r.peak_rss_bytes},
          {"threads", r.threads}, {"key_streamed", r.key_streamed}, {"key_wait_s", r.key_wait_s},
          {"batch", r.batch}, {"batches", r.batches}};
}

PartyReport party_from_records(const json& j) {
  PartyReport r;
  r.party = j.at("party").get<std::string>();
  r.inferences = j.at("inferences").get<int64_t>();
  r.first_inference = j.at("first_inference").get<uint64_t>();
  for (const auto& l : j.at("layers")) r.layers.push_back(unraw(l));
  r.online = unraw(j.at("online"));
  r.preprocessing_s = j.at("preprocessing_s").get<double>();
  r.online_s = j.at("online_s").get<double>();
  r.setup = unraw(j.at("setup"));
  r.key_file_bytes = j.at("key_file_bytes").get<uint64_t>();
  r.key_bytes_per_inference = j.at("key_bytes_per_inference").get<uint64_t>();
  r.peak_rss_bytes = j.at("peak_rss_bytes").get<int64_t>();
  r.threads = j.at("threads").get<int>();
  r.key_streamed = j.at("key_streamed").get<bool>();
  r.key_wait_s = j.at("key_wait_s").get<double>();
  r.batch = j.at("batch").get<int64_t>();
  r.batches = j.at("batches").get<int64_t>();
  return r;
}

int64_t peak_rss_bytes() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;  // Linux: kilobytes
}

}  // namespace dr::mpc
