#pragma once
// Plaintext references of the private runtime, for tests and for the
// agreement figures of `deepreduce pi`:
//  - fixed_forward: the exact fixed-point computation the protocol
//    approximates, over int64 with exact arithmetic-shift truncation, in the
//    protocol's op order (z = W*x + B at scale 2f, then z >> f);
//  - folded_forward: the same program in double (BatchNorm folded, no quantisation);
//  - float_forward: the network as trained, BatchNorm unfolded, in double.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "arch/network.h"
#include "mpc/gate.h"
#include "mpc/model.h"
#include "mpc/program.h"

namespace dr::mpc {

// A value of the fixed-point reference left the safe range (|z| >= 2^62):
// the private protocol's truncation and ReLU would be wrong there.
struct FixedPointOverflow : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Refuses (FixedPointOverflow naming the step, the element and `what`) a
// value of the fixed-point reference at or beyond +-2^62.
void check_fixed_range(__int128 v, const Step& s, size_t element, const char* what);

// llround(x * 2^f) for a normalised input. Throws FixedPointOverflow for a
// value outside +-2^62.
std::vector<int64_t> quantise_input(const std::vector<double>& x, int frac_bits);

// Every wire's value and every linear step's pre-truncation z (for tests).
struct FixedTrace {
  std::vector<std::vector<int64_t>> wires;      // by wire id, scale f
  std::vector<std::vector<int64_t>> pre_trunc;  // by linear_index, scale 2f
};

// Logits at scale f. Throws FixedPointOverflow naming the step and element.
// A gate step with parameters reads model.gates. `comparisons` (if given)
// gathers the inputs of the ReLU and max gate steps: how many lie outside
// what their gate computes exactly (the two-round gate's width, whose sign
// the reference then reads as the protocol does) and the largest |input|.
std::vector<int64_t> fixed_forward(const Program& program, const QuantModel& model, const std::vector<int64_t>& x,
                                   FixedTrace* trace = nullptr, GateInputRange* comparisons = nullptr);

// `gates`: each gate step's parameters (gate_params; may be empty when no
// gate step has any).
std::vector<double> folded_forward(const Program& program, const std::vector<FoldedLinear>& model,
                                   const std::vector<double>& x, const std::vector<std::vector<double>>& gates = {});

// A site's polynomial elements read "<site>.poly".
std::vector<double> float_forward(const arch::Network& net, const FloatModel& model, const std::vector<double>& x);

// Fixed point (scale f) to double.
std::vector<double> to_double(const std::vector<int64_t>& v, int frac_bits);

// The plaintext fixed-point logits of a raw image (pixels in [0, 1], CHW):
// normalised with the model's mean/std and quantised exactly as the client does.
std::vector<int64_t> fixed_reference(const Program& program, const QuantModel& model, const FloatModel& norm,
                                     const std::vector<float>& pixels, GateInputRange* comparisons = nullptr);

// How private logits agree with the fixed-point reference over a run.
// Truncation rounds each linear output up by at most one unit (unbiased), so
// small differences are expected; a share wrap-around (probability about
// |z|/2^64 per element) puts an element off by about 2^(64-f) units, which
// shows as a logit off by far more than rounding can explain: such an image
// counts as a failure (|difference| >= kFailureReal in real units).
struct Agreement {
  static constexpr double kFailureReal = 65536.0;
  int64_t images = 0, argmax_equal = 0, failures = 0;
  double max_abs_diff = 0;  // real units, over images that are not failures
  void add(const std::vector<int64_t>& private_logits, const std::vector<int64_t>& reference, int frac_bits);
};
nlohmann::json to_json(const Agreement& a);

// Index of the largest value (the first on ties).
template <class T>
int64_t argmax(const std::vector<T>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
  return best;
}

}  // namespace dr::mpc
