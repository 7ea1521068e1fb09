#pragma once
// A gate of the private runtime: a nonlinear function applied element by
// element to the live elements of a gate step (program.h), each element with a
// key from the dealer. All that differs between gates sits behind this
// interface, one file per gate under mpc/gates/ (gates/relu.h, gates/poly.h);
// the dealer, both parties, the key layout, the cost formula and the
// plaintext references walk the program and ask each gate step's gate, never
// its kind.
//
// A gate may have parameters of its own (the polynomial gate: coefficients
// per channel of its site, the server's): the model parameter a step names
// (Step::param, param_count values), quantised by the gate; words the dealer
// draws once per key set for the server (session_words, in the server key
// file's global section); words the server sends the client once per session
// (setup_words, from its parameters and session words). Each call gets them,
// as the caller holds them, through GateData; a gate without parameters
// (the ReLU gate) reads none of it.
//
// Adding a gate: its file under gates/ (key layout, deal, evaluation and
// references, from its paper), a GateKind in program.h, a line in gate_of
// (gate.cpp), and the program compiler emitting steps of it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "mpc/keys.h"
#include "mpc/program.h"
#include "mpc/prg.h"

namespace dr::mpc {

// A gate step's own data for one call of deal or evaluate.
struct GateData {
  const Step* step = nullptr;  // the step (which channel each element lies in)
  size_t first = 0;            // the call's first element among the step's live elements; an
                               // evaluation's elements may be a batch's, several images' live
                               // elements one image after another: element e is then live
                               // element (first + e) mod live_count
  const u64* words = nullptr;  // dealer: the step's session words; server: its quantised
                               // parameters; client: the setup words the server sent
  int frac_bits = 0;           // evaluation: the fixed point's f
};

class Gate {
 public:
  virtual ~Gate() = default;
  // The step kind that records, cost tables and errors show ("relu").
  virtual const char* name() const = 0;
  // Key bytes per live element and party; a gate step's keys are its live
  // elements' keys, one after another, in the step's order.
  virtual size_t key_bytes() const = 0;
  // Online: the exchanges of one step (0 for a step without live elements is
  // never asked: such a step does not exist), and the words each party sends
  // over all of them for a step of `elements` live elements.
  virtual int rounds() const = 0;
  virtual int64_t words_sent(int64_t elements) const = 0;
  // The inputs the gate computes exactly: within +-2^(input_bits() - 1) (64:
  // all of Z_2^64). The plaintext references count the inputs outside it
  // (out_of_range), as a truncation failure is counted, never silently.
  virtual int input_bits() const { return 64; }
  // The oldest key file format (keys.h) that can hold this gate's keys.
  virtual uint32_t key_format_version() const { return 1; }

  // Parameters (none by default): how many values of the model parameter
  // Step::param the step reads; the server's quantised form of them (throws
  // std::runtime_error naming the step for a value the ring cannot hold);
  // the session words per key set; the setup words per session and how the
  // server makes them from its quantised parameters and its session words.
  virtual int64_t param_count(const Step& s) const { return 0; }
  virtual std::vector<int64_t> quantise(const Step& s, const std::vector<double>& params, int frac_bits) const {
    return {};
  }
  virtual int64_t session_words(const Step& s) const { return 0; }
  virtual int64_t setup_words(const Step& s) const { return 0; }
  virtual std::vector<u64> setup(const Step& s, const std::vector<int64_t>& params, const u64* session) const {
    return {};
  }

  // Dealer: both parties' keys for n elements (the step's live elements
  // data.first .. data.first + n - 1) with input masks r_in and output masks
  // r_out (drawn by the caller). Several threads may deal at once into
  // disjoint keys, each with its own Prg.
  virtual void deal(const GateData& data, const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
                    uint8_t* key1) const = 0;

  // Party p: from x^ = x + r_in of the step's live elements, returns
  // y^ = g(x) + r_out of each, opened. `open` sends this party's shares and
  // returns their sum with the peer's (one round per call). By default the
  // opening of shares(): a gate of more rounds overrides it.
  using Open = std::function<std::vector<u64>(const std::vector<u64>& shares)>;
  virtual std::vector<u64> evaluate(Party p, const GateData& data, const uint8_t* keys,
                                    const std::vector<u64>& x_hat, const Open& open, int threads) const {
    return open(shares(p, data, keys, x_hat, threads));
  }
  // A gate that opens once (the one-round ReLU gate, the polynomial gate):
  // this party's shares of y^ = g(x) + r_out, computed locally, that
  // evaluate opens. The parties send the shares of such a gate step in the
  // first message of the step before it on the same site
  // (Step::opens_with_next). Others: std::logic_error.
  virtual bool opens_once() const { return false; }
  virtual std::vector<u64> shares(Party p, const GateData& data, const uint8_t* keys, const std::vector<u64>& x_hat,
                                  int threads) const;

  // Plaintext references on the step's live elements (the rest pass through),
  // given the step's parameters (quantised, or as the model holds them): the
  // exact fixed-point value the protocol computes (scale f; a gate that
  // truncates may be one unit above it, as the linear layers) and the real
  // value.
  virtual void fixed_reference(const Step& s, const std::vector<int64_t>& params, std::vector<int64_t>& wire,
                               int frac_bits) const = 0;
  virtual void real_reference(const Step& s, const std::vector<double>& params, std::vector<double>& wire) const = 0;

  // The same calls for a gate without parameters (the ReLU gate), whose
  // data would be empty anyway.
  void deal(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0, uint8_t* key1) const {
    deal(GateData{}, r_in, r_out, n, rng, key0, key1);
  }
  std::vector<u64> evaluate(Party p, const uint8_t* keys, const std::vector<u64>& x_hat, const Open& open,
                            int threads) const {
    return evaluate(p, GateData{}, keys, x_hat, open, threads);
  }
  void fixed_reference(const Step& s, std::vector<int64_t>& wire, int frac_bits) const {
    fixed_reference(s, {}, wire, frac_bits);
  }
  void real_reference(const Step& s, std::vector<double>& wire) const { real_reference(s, {}, wire); }
};

// The gate of a kind, a ReLU and max gate with the comparison `relu_gate`
// (the default: the one-round DCF gate), and the gate a step runs.
const Gate& gate_of(GateKind kind, ReluGateChoice relu_gate = {});
inline const Gate& gate_of(const Step& s) { return gate_of(s.gate, s.comparison); }

// Whether a site's polynomial elements open with its ReLU elements (the
// polynomial gate opens once: its shares travel in the ReLU step's first
// message, whichever ReLU gate): what the program compiler marks
// (Step::opens_with_next) and what a cost plan of mixed sites assumes.
inline bool polys_open_with_relus() { return gate_of(GateKind::Poly).opens_once(); }

// How many of a gate step's live inputs (fixed point, as the plaintext
// reference holds them) lie outside what its gate computes exactly
// (Gate::input_bits), and the largest |input| among them all.
struct GateInputRange {
  int64_t out_of_range = 0;
  uint64_t largest = 0;
};
GateInputRange gate_input_range(const Step& s, const std::vector<int64_t>& wire);

// What records and cost tables call a step: its gate's name for a gate step,
// step_kind_name otherwise.
const char* kind_name(const Step& s);

// The live ReLUs of a step (the count every report shows): a ReLU gate
// step's live elements, 0 for any other step.
inline int64_t live_relus(const Step& s) {
  return s.kind == StepKind::Gate && s.gate == GateKind::Relu ? s.live_count : 0;
}

}  // namespace dr::mpc
