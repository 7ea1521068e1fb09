#include "mpc/architecture.h"


#include <nlohmann/json.hpp>
#include <stdexcept>

#include "arch/spec.h"

namespace dr::mpc {

using nlohmann::json;

void check_frac_bits(int frac_bits) {
  if (frac_bits < kMinFracBits || frac_bits > kMaxFracBits)
    throw std::invalid_argument("fractional bits f = " + std::to_string(frac_bits) + ": accepted " +
                                std::to_string(kMinFracBits) + ".." + std::to_string(kMaxFracBits) +
                                " (values are fixed point in Z_2^64; larger f leaves too little headroom)");
}

Architecture architecture_of(const arch::Network& net) {
  Architecture a;
  a.spec = net.spec;
  a.input = net.input;
  a.classes = net.classes;
  for (const arch::Layer* l : net.layers())
    if (l->op == arch::Op::ReLU && l->live && l->mask) a.masks[l->name] = *l->mask;
  return a;
}

namespace {

// The kept bits packed LSB first, as lower-case hex: compact and canonical.
std::string pack_bits(const std::vector<uint8_t>& keep) {
  std::vector<uint8_t> bytes((keep.size() + 7) / 8, 0);
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) bytes[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  return hex(bytes.data(), bytes.size());
}

std::vector<uint8_t> unpack_bits(const std::string& text, size_t n, const std::string& layer) {
  if (text.size() != 2 * ((n + 7) / 8))
    throw std::runtime_error("architecture: mask of '" + layer + "' has " + std::to_string(text.size()) +
                             " hex digits for " + std::to_string(n) + " elements");
  std::vector<uint8_t> keep(n);
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::runtime_error("architecture: mask of '" + layer + "' is not lower-case hex");
  };
  for (size_t i = 0; i < n; ++i) {
    const int byte = digit(text[2 * (i / 8)]) * 16 + digit(text[2 * (i / 8) + 1]);
    keep[i] = static_cast<uint8_t>((byte >> (i % 8)) & 1);
  }
  return keep;
}

arch::Layer* find_layer(arch::Network& net, const std::string& name) {
  for (arch::Layer* l : net.mutable_layers())
    if (l->name == name) return l;
  return nullptr;
}

}  // namespace

arch::Network build_network(const Architecture& a) {
  arch::Network net = arch::build_network(a.spec, arch::InputSpec{a.input, a.classes});
  for (const auto& [name, mask] : a.masks) {
    arch::Layer* l = find_layer(net, name);
    const std::string where = "architecture '" + a.spec + "': mask for '" + name + "'";
    if (!l || l->op != arch::Op::ReLU) throw std::runtime_error(where + " names no ReLU layer of the network");
    if (!l->live) throw std::runtime_error(where + ": the spec removes that ReLU");
    const int64_t sites = mask.channelwise ? l->out.c : l->out.numel();
    if (static_cast<int64_t>(mask.keep.size()) != sites)
      throw std::runtime_error(where + " has " + std::to_string(mask.keep.size()) + " entries, the site has " +
                               std::to_string(sites) + (mask.channelwise ? " channels" : " elements"));
    int64_t kept = 0;
    for (uint8_t k : mask.keep) kept += k ? 1 : 0;
    const int64_t live = mask.channelwise ? kept * l->out.h * l->out.w : kept;
    if (live != mask.live)
      throw std::runtime_error(where + " says " + std::to_string(mask.live) + " live elements, its bits keep " +
                               std::to_string(live));
    l->mask = std::make_shared<arch::ReluMask>(mask);
  }
  return net;
}

std::string serialize_architecture(const Architecture& a) {
  json masks = json::object();
  for (const auto& [name, m] : a.masks)
    masks[name] = {{"channelwise", m.channelwise},
                   {"entries", m.keep.size()},
                   {"keep", pack_bits(m.keep)},
                   {"live", m.live}};
  const json j = {{"format", "deepreduce-mpc-architecture"},
                  {"version", 1},
                  {"spec", a.spec},
                  {"input", {a.input.c, a.input.h, a.input.w}},
                  {"classes", a.classes},
                  {"masks", masks}};
  return j.dump();  // nlohmann's object is a sorted map: canonical
}

Architecture parse_architecture(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("format") != "deepreduce-mpc-architecture" || j.at("version") != 1)
      throw std::runtime_error("not a deepreduce-mpc-architecture version 1 record");
    Architecture a;
    a.spec = j.at("spec").get<std::string>();
    const auto& in = j.at("input");
    a.input = {in.at(0).get<int64_t>(), in.at(1).get<int64_t>(), in.at(2).get<int64_t>()};
    a.classes = j.at("classes").get<int64_t>();
    for (const auto& [name, m] : j.at("masks").items()) {
      arch::ReluMask mask;
      mask.channelwise = m.at("channelwise").get<bool>();
      mask.live = m.at("live").get<int64_t>();
      mask.keep = unpack_bits(m.at("keep").get<std::string>(), m.at("entries").get<size_t>(), name);
      a.masks[name] = std::move(mask);
    }
    return a;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("architecture record is malformed: ") + e.what());
  }
}

Hash model_hash(const Architecture& a, int frac_bits) {
  check_frac_bits(frac_bits);
  const std::string text = "deepreduce-mpc model v1\n" + serialize_architecture(a) +
                           "\nl=" + std::to_string(kRingBits) + "\nf=" + std::to_string(frac_bits) + "\n";
  return sha256(text.data(), text.size());
}

}  // namespace dr::mpc
