#include "mpc/architecture.h"

#include <algorithm>
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

// Two record versions. Version 1 (every deepreduce before polynomial
// elements, and still what is written for masks of ReLUs and identities
// only, so their bytes and model hashes do not change): a mask's entries as
// "keep" bits. Version 2 (written when any mask has a polynomial element):
// "ops", two bits per entry (arch::SiteOp: 0 identity, 1 ReLU, 2
// polynomial), and the count "polys". Both pack LSB first into bytes written
// as lower-case hex: compact and canonical.
constexpr int kBitsVersion = 1, kOpsVersion = 2;
const char* const kAccepted =
    "accepted: version 1 (masks as 'keep' bits) and 2 (masks as 'ops', two bits per entry: 0 identity, 1 ReLU, "
    "2 polynomial)";

bool any_polynomial(const Architecture& a) {
  for (const auto& [name, m] : a.masks)
    if (std::count(m.ops.begin(), m.ops.end(), static_cast<uint8_t>(arch::SiteOp::Poly)) > 0) return true;
  return false;
}

// `bits` (1 or 2) per entry, LSB first.
std::string pack(const std::vector<uint8_t>& entries, int bits) {
  const size_t per_byte = size_t(8 / bits);
  std::vector<uint8_t> bytes((entries.size() + per_byte - 1) / per_byte, 0);
  for (size_t i = 0; i < entries.size(); ++i)
    bytes[i / per_byte] |= static_cast<uint8_t>(entries[i] << (bits * (i % per_byte)));
  return hex(bytes.data(), bytes.size());
}

// The inverse of pack for n entries; refuses a wrong length, non-hex text,
// an entry above `max` and set padding bits (canonical form), naming the layer.
std::vector<uint8_t> unpack(const std::string& text, size_t n, int bits, uint8_t max, const std::string& layer) {
  const size_t per_byte = size_t(8 / bits), nbytes = (n + per_byte - 1) / per_byte;
  const std::string what = "architecture: mask of '" + layer + "'";
  if (text.size() != 2 * nbytes)
    throw std::runtime_error(what + " has " + std::to_string(text.size()) + " hex digits for " + std::to_string(n) +
                             " entries of " + std::to_string(bits) + " bit" + (bits > 1 ? "s" : "") + " (expected " +
                             std::to_string(2 * nbytes) + ")");
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::runtime_error(what + " is not lower-case hex");
  };
  std::vector<uint8_t> entries(n);
  const uint8_t field = static_cast<uint8_t>((1u << bits) - 1);
  for (size_t b = 0; b < nbytes; ++b) {
    const int byte = digit(text[2 * b]) * 16 + digit(text[2 * b + 1]);
    for (size_t k = 0; k < per_byte; ++k) {
      const size_t i = b * per_byte + k;
      const auto v = static_cast<uint8_t>((byte >> (bits * k)) & field);
      if (i >= n && v != 0 && bits > 1) throw std::runtime_error(what + " has padding bits set after its last entry");
      if (i >= n) continue;
      if (v > max)
        throw std::runtime_error(what + " holds the value " + std::to_string(v) + " at entry " + std::to_string(i) +
                                 " (accepted: 0 identity, 1 ReLU, 2 polynomial)");
      entries[i] = v;
    }
  }
  return entries;
}

arch::Layer* find_layer(arch::Network& net, const std::string& name) {
  for (arch::Layer* l : net.mutable_layers())
    if (l->name == name) return l;
  return nullptr;
}

arch::ReluMask parse_mask(const json& m, int version, const std::string& name) {
  arch::ReluMask mask;
  mask.channelwise = m.at("channelwise").get<bool>();
  mask.live = m.at("live").get<int64_t>();
  const size_t entries = m.at("entries").get<size_t>();
  if (version == kBitsVersion) {
    if (m.contains("ops"))
      throw std::runtime_error("architecture: mask of '" + name + "' has 'ops' in a version 1 record");
    mask.ops = unpack(m.at("keep").get<std::string>(), entries, 1, 1, name);
  } else {
    mask.ops = unpack(m.at("ops").get<std::string>(), entries, 2, static_cast<uint8_t>(arch::SiteOp::Poly), name);
    mask.polys = m.at("polys").get<int64_t>();
  }
  return mask;
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
    if (static_cast<int64_t>(mask.ops.size()) != sites)
      throw std::runtime_error(where + " has " + std::to_string(mask.ops.size()) + " entries, the site has " +
                               std::to_string(sites) + (mask.channelwise ? " channels" : " elements"));
    arch::MaskCounts n;
    try {
      n = arch::mask_counts(*l, mask);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    if (n.relus != mask.live || n.polys != mask.polys)
      throw std::runtime_error(where + " says " + std::to_string(mask.live) + " live and " +
                               std::to_string(mask.polys) + " polynomial elements, its entries hold " +
                               std::to_string(n.relus) + " and " + std::to_string(n.polys));
    l->mask = std::make_shared<arch::ReluMask>(mask);
  }
  return net;
}

Program compile_program(const Architecture& a, ProgramDetail detail) {
  return compile_program(build_network(a), detail, a.relu_gate);
}

std::string serialize_architecture(const Architecture& a) {
  const bool ops = any_polynomial(a);
  json masks = json::object();
  for (const auto& [name, m] : a.masks) {
    json j = {{"channelwise", m.channelwise}, {"entries", m.ops.size()}, {"live", m.live}};
    if (ops) {
      j["ops"] = pack(m.ops, 2);
      j["polys"] = m.polys;
    } else {
      j["keep"] = pack(m.ops, 1);
    }
    masks[name] = std::move(j);
  }
  json j = {{"format", "deepreduce-mpc-architecture"},
            {"version", ops ? kOpsVersion : kBitsVersion},
            {"spec", a.spec},
            {"input", {a.input.c, a.input.h, a.input.w}},
            {"classes", a.classes},
            {"masks", masks}};
  if (a.relu_gate != ReluGateChoice{}) j["relu_gate"] = relu_gate_name(a.relu_gate);
  return j.dump();  // nlohmann's object is a sorted map: canonical
}

Architecture parse_architecture(const std::string& text) {
  try {
    const json j = json::parse(text);
    if (j.at("format") != "deepreduce-mpc-architecture")
      throw std::runtime_error("not a deepreduce-mpc-architecture record (" + std::string(kAccepted) + ")");
    const json& v = j.at("version");
    const int version = v.is_number_integer() ? v.get<int>() : -1;
    if (version != kBitsVersion && version != kOpsVersion)
      throw std::runtime_error("architecture record of version " + v.dump() + " (" + kAccepted + ")");
    Architecture a;
    a.spec = j.at("spec").get<std::string>();
    const auto& in = j.at("input");
    a.input = {in.at(0).get<int64_t>(), in.at(1).get<int64_t>(), in.at(2).get<int64_t>()};
    a.classes = j.at("classes").get<int64_t>();
    for (const auto& [name, m] : j.at("masks").items()) a.masks[name] = parse_mask(m, version, name);
    if (j.contains("relu_gate")) {
      a.relu_gate = parse_relu_gate(j.at("relu_gate").get<std::string>());
      if (a.relu_gate == ReluGateChoice{})
        throw std::runtime_error("architecture record names the default ReLU gate (canonical records leave it out)");
    }
    return a;
  } catch (const json::exception& e) {
    throw std::runtime_error(std::string("architecture record is malformed: ") + e.what());
  } catch (const std::invalid_argument& e) {
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
