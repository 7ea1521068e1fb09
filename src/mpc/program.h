#pragma once
// The private runtime's program, compiled from an arch::Network: a sequence
// of steps over wires (tensors between layers). The dealer, both parties, the
// plaintext references and the cost formula all walk the same program, so they
// agree on the order of wires, masks, key material and messages.
//
//   Input    client -> server: x^ = x + r0
//   Linear   conv or FC (+ the BatchNorm after it, folded in; an FC after a
//            global pool carries the pool's 1/(H*W)); one exchange
//   Add      residual add: local, masks add
//   SumPool  global average pool as a per-channel sum: local, masks add
//   Gate     a gate (gate.h) on the live elements of an activation site: the
//            ReLU gate on a site's ReLU elements, then the polynomial gate on
//            its polynomial elements (one step each, on the same wire; an
//            identity element passes through both); its rounds are the
//            gate's, but the polynomial step's shares travel in the ReLU
//            step's first message (Step::opens_with_next): a polynomial adds
//            no round to a site that has ReLUs. A removed ReLU, a site of identities
//            only and flatten are no step at all
//   PairDiff out[p] = in[first[p]] - in[second[p]]: local, masks subtract
//   PairMax  out[p] = in[second[p]] + in2[p]: local, masks add
//            A max pooling is levels of pairwise maxima, max(a, b) =
//            b + relu(a - b): per level a PairDiff, a gate step of the max
//            gate (the ReLU gate under the name "maxpool") on every
//            difference, and a PairMax (the masked a^ - b^ is a masked
//            a - b, so a difference costs no message). Each level halves
//            every window (its in-bounds inputs: padding is never the
//            maximum; an odd element is paired with itself): 2x2 / 2 is two
//            rounds and three comparisons an output, a padded 3x3 four rounds
//   Output   the client unmasks the last wire
#include <stdexcept>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::mpc {

// A layer the private runtime cannot run (a 1x1 max pooling, a BatchNorm with no
// convolution before it, ...). The message names the layer.
struct UnsupportedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class StepKind { Input, Linear, Add, SumPool, Gate, PairDiff, PairMax, Output };
// "input", "linear", "add", "sumpool", "gate", "pairdiff", "pairmax", "output"
const char* step_kind_name(StepKind k);
// Which gate a gate step runs (gate_of in gate.h: the gate itself).
enum class GateKind : uint8_t { Relu, Poly, Max };

// How the runtime compares, in its ReLU gate and in max pooling's
// comparisons, a choice of the user (`--relu-gate`) fixed when the keys are
// dealt: the one-round gate on a DCF (gates/relu.h) over all 64 bits (the
// default) or over the low `bits` bits of its input, or the two-round gate
// on a DPF over the low `bits` bits (gates/relu_dpf.h). A gate on fewer
// than 64 bits is exact for inputs within +-2^(bits-1), with smaller keys.
// Written "dcf" (= dcf:64), "dcf:BITS" and "dpf:BITS".
struct ReluGateChoice {
  enum class Kind : uint8_t { Dcf, Dpf };
  static constexpr int kMinBits = 8, kMaxBits = 64;
  Kind kind = Kind::Dcf;
  int bits = 64;  // the inputs the gate compares exactly lie within +-2^(bits-1)
  bool operator==(const ReluGateChoice& o) const { return kind == o.kind && bits == o.bits; }
  bool operator!=(const ReluGateChoice& o) const { return !(*this == o); }
};
std::string relu_gate_name(const ReluGateChoice& c);
// Inverse of relu_gate_name; std::invalid_argument naming `text` and what is accepted.
ReluGateChoice parse_relu_gate(const std::string& text);

// Geometry of a convolution; an FC is a 1x1 convolution over a 1x1 image of
// `cin` channels (fc = true).
struct ConvGeom {
  int64_t cin = 0, cout = 0, h = 1, w = 1, oh = 1, ow = 1, k = 1, stride = 1, pad = 0, groups = 1;
  bool fc = false;
  int64_t in_numel() const { return cin * h * w; }
  int64_t out_numel() const { return cout * oh * ow; }
  int64_t weight_numel() const { return cout * (cin / groups) * k * k; }
  int64_t macs() const { return out_numel() * (cin / groups) * k * k; }
};

// The geometry of a conv or FC layer (pool scale and BatchNorm aside).
ConvGeom conv_geom(const arch::Layer& l);

struct Step {
  StepKind kind = StepKind::Input;
  std::string name;  // the layer's name (add: "<block>.add"; input/output: "input"/"output")
  int in = -1, in2 = -1, out = -1;  // wire ids (in2: the add's second operand)
  // Linear.
  ConvGeom geom;
  std::string bn;             // the BatchNorm folded into this conv ("" if none)
  bool bias = false;          // the conv/FC has its own bias parameter
  double weight_scale = 1.0;  // 1/(H*W) of the global average pool before this FC
  int linear_index = -1;      // position among the linear steps
  // Gate: which gate, how many elements are live, and (a program compiled with
  // ProgramDetail::Indices) their CHW indices, ascending.
  GateKind gate = GateKind::Relu;
  ReluGateChoice comparison;  // a ReLU or max gate step: which construction compares
  int64_t live_count = 0;
  std::vector<int64_t> live;
  int gate_index = -1;        // position among the gate steps
  // The next step is a gate step of the same site whose gate opens once
  // (Gate::opens_once): the parties send its shares with this step's in this
  // step's first message, so it adds no round. The next step's input
  // elements are this step's (it changes none of them).
  bool opens_with_next = false;
  // A gate with parameters per channel of its site (the polynomial gate):
  // the model parameter it reads ("<site>.poly"), the site's channels C and
  // the elements of one channel H*W; "" and 0 for the ReLU gate.
  std::string param;
  int64_t channels = 0, plane = 0;
  int64_t channel_of(int64_t element) const { return element / plane; }
  // PairDiff and PairMax (ProgramDetail::Indices): each output's input
  // elements; live_count holds their number in either detail.
  std::vector<int64_t> first, second;
};

// The local maps of PairDiff and PairMax steps, over any ring or field:
// masked wires (u64), their masks, and the plaintext references.
template <class T>
std::vector<T> pair_diff(const Step& s, const std::vector<T>& in) {
  std::vector<T> out(s.first.size());
  for (size_t p = 0; p < out.size(); ++p) out[p] = in[size_t(s.first[p])] - in[size_t(s.second[p])];
  return out;
}
template <class T>
std::vector<T> pair_max(const Step& s, const std::vector<T>& in, const std::vector<T>& relu_of_diff) {
  std::vector<T> out(s.second.size());
  for (size_t p = 0; p < out.size(); ++p) out[p] = in[size_t(s.second[p])] + relu_of_diff[p];
  return out;
}

struct Program {
  arch::Shape input;
  ReluGateChoice relu_gate;  // every ReLU and max gate step's comparison
  int64_t classes = 0;
  std::vector<int64_t> wire_numel;  // elements of each wire
  std::vector<Step> steps;
  int input_wire = 0, output_wire = 0;
  std::vector<int> linear_steps, gate_steps;  // indices into steps

  int64_t input_numel() const { return input.numel(); }
  const Step& linear(int i) const { return steps[static_cast<size_t>(linear_steps[static_cast<size_t>(i)])]; }
  const Step& gate_step(int i) const { return steps[static_cast<size_t>(gate_steps[static_cast<size_t>(i)])]; }
};

// What a program holds for its gate steps. Indices: every live element's index
// (what the dealer and the parties need to run it). Counts: only live_count,
// `live` stays empty; enough for the cost formula (mpc::expected_cost), so a
// network of any size the description accepts can be costed without
// materialising one index per ReLU element.
enum class ProgramDetail { Indices, Counts };

// Throws UnsupportedError naming the layer for what the runtime cannot do.
// Both details give the same steps, wires and live_count.
// `relu_gate`: the comparison of every ReLU and max gate step.
Program compile_program(const arch::Network& net, ProgramDetail detail = ProgramDetail::Indices,
                        ReluGateChoice relu_gate = {});

}  // namespace dr::mpc
