#pragma once
// What the dealer sees of a model: the spec string, the input shape, the
// number of classes, the pixel-level ReLU masks (by layer name: each
// element's op, ReLU, identity or polynomial) and the ReLU gate the keys are
// dealt for (program.h: ReluGateChoice). No weights. Its canonical serialisation goes into both key files, and its
// SHA-256 together with the ring size l = 64 and the fractional bits f is the
// "model hash" that the two parties compare in the handshake.
#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "arch/network.h"
#include "mpc/program.h"
#include "util/hash.h"

namespace dr::mpc {

using u64 = uint64_t;

constexpr int kRingBits = 64;        // l: every value lives in Z_2^64
constexpr int kDefaultFracBits = 12; // f
constexpr int kMinFracBits = 1;
constexpr int kMaxFracBits = 16;

// Throws std::invalid_argument unless kMinFracBits <= f <= kMaxFracBits.
void check_frac_bits(int frac_bits);

struct Architecture {
  std::string spec;  // canonical model spec (arch::Network::spec)
  arch::Shape input;
  int64_t classes = 0;
  std::map<std::string, arch::ReluMask> masks;  // ReLU layer name -> its mask
  ReluGateChoice relu_gate;                      // how the private runtime compares
};

// Spec, input, classes and the masks of the network's live ReLU sites.
Architecture architecture_of(const arch::Network& net);

// Rebuilds the network: arch::build_network, then the masks attached. Throws
// std::runtime_error when a mask names no live ReLU layer, has the wrong size,
// an entry that is no op, or counts (live, polys) its entries do not hold.
arch::Network build_network(const Architecture& a);

// The program of an architecture: its network with its ReLU gate.
Program compile_program(const Architecture& a, ProgramDetail detail = ProgramDetail::Indices);

// Canonical text (compact JSON, sorted keys, masks as hex strings): equal
// architectures give equal bytes. "relu_gate" ("dpf:N") only when it is not
// the default, so that every earlier architecture keeps its bytes. Version 1 (masks as "keep" bits, as every
// earlier build wrote) when no mask has a polynomial element, so such
// architectures keep their bytes and model hashes; version 2 (masks as
// "ops", two bits per entry, and "polys") otherwise.
std::string serialize_architecture(const Architecture& a);
// Inverse of serialize_architecture; reads both versions. Throws
// std::runtime_error on malformed text, saying which versions are accepted.
Architecture parse_architecture(const std::string& text);

using Hash = util::Digest;
using util::hex;
using util::sha256;

// SHA-256 of the serialised architecture, l = 64 and f.
Hash model_hash(const Architecture& a, int frac_bits);

}  // namespace dr::mpc
