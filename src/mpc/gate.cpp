#include "mpc/gate.h"

#include <algorithm>
#include <stdexcept>

#include "mpc/gates/poly.h"
#include "mpc/gates/relu.h"
#include "mpc/gates/relu_dpf.h"

namespace dr::mpc {

const Gate& gate_of(GateKind kind, ReluGateChoice comparison) {
  const bool dpf = comparison.kind == ReluGateChoice::Kind::Dpf;
  switch (kind) {  // the registry: one line per gate
    case GateKind::Relu: return dpf ? relu_dpf_gate(comparison.bits) : relu_gate(comparison.bits);
    case GateKind::Poly: return poly_gate();
    case GateKind::Max: return dpf ? max_dpf_gate(comparison.bits) : max_gate(comparison.bits);
  }
  throw std::logic_error("gate_of: unknown gate kind " + std::to_string(int(kind)));
}

std::vector<u64> Gate::shares(Party, const GateData&, const uint8_t*, const std::vector<u64>&, int) const {
  throw std::logic_error(std::string("gate '") + name() + "' does not open once: it has no shares() to open");
}

GateInputRange gate_input_range(const Step& s, const std::vector<int64_t>& wire) {
  GateInputRange r;
  const int bits = gate_of(s).input_bits();
  const uint64_t limit = bits >= 64 ? 0 : uint64_t(1) << (bits - 1);  // |x| < limit, or x >= -limit
  for (int64_t i : s.live) {
    const int64_t x = wire[size_t(i)];
    const uint64_t mag = x < 0 ? uint64_t(0) - uint64_t(x) : uint64_t(x);
    r.largest = std::max(r.largest, mag);
    if (limit != 0 && (x >= 0 ? mag >= limit : mag > limit)) ++r.out_of_range;
  }
  return r;
}

const char* kind_name(const Step& s) { return s.kind == StepKind::Gate ? gate_of(s).name() : step_kind_name(s.kind); }

}  // namespace dr::mpc
