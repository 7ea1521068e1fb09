#pragma once
// A gate of the private runtime: a nonlinear function applied element by
// element to the live elements of a gate step (program.h), each element with a
// key from the dealer. All that differs between gates sits behind this
// interface, one file per gate under mpc/gates/ (gates/relu.h today); the
// dealer, both parties, the key layout, the cost formula and the plaintext
// references walk the program and ask each gate step's gate, never its kind.
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
  // per live element over all of them.
  virtual int rounds() const = 0;
  virtual int64_t words_sent_per_element() const = 0;

  // Dealer: both parties' keys for n elements with input masks r_in and
  // output masks r_out (drawn by the caller). Several threads may deal at
  // once into disjoint keys, each with its own Prg.
  virtual void deal(const u64* r_in, const u64* r_out, size_t n, Prg& rng, uint8_t* key0,
                    uint8_t* key1) const = 0;

  // Party p: from x^ = x + r_in of the step's live elements, returns
  // y^ = g(x) + r_out of each, opened. `open` sends this party's shares and
  // returns their sum with the peer's (one round per call).
  using Open = std::function<std::vector<u64>(const std::vector<u64>& shares)>;
  virtual std::vector<u64> evaluate(Party p, const uint8_t* keys, const std::vector<u64>& x_hat,
                                    const Open& open, int threads) const = 0;

  // Plaintext references on the step's live elements (the rest pass through):
  // the exact fixed-point value the protocol computes (scale f) and the real
  // value.
  virtual void fixed_reference(const Step& s, std::vector<int64_t>& wire, int frac_bits) const = 0;
  virtual void real_reference(const Step& s, std::vector<double>& wire) const = 0;
};

const Gate& gate_of(GateKind kind);
inline const Gate& gate_of(const Step& s) { return gate_of(s.gate); }

// What records and cost tables call a step: its gate's name for a gate step,
// step_kind_name otherwise.
const char* kind_name(const Step& s);

}  // namespace dr::mpc
