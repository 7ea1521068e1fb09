#pragma once
// Model specs: one string names a reduced network.
//   family[:key[=value]]...      e.g. resnet18:cull=S1,S4:thin:alpha=0.5:rho=0.5
// Keys: alpha=F, rho=F, blocks=N,N,..., cull=Sa,Sb, keep=Sa,Sb, thin[=POLICY].
// Order does not matter; each key, and each stage of a list, is given once;
// the canonical form sorts the keys.

#include <optional>
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "arch/family.h"
#include "arch/network.h"

namespace dr::arch {

struct ModelSpec {
  std::string family;
  double alpha = 1.0;              // channel scaling: every width int(c * alpha)
  double rho = 1.0;                // resolution scaling: stem stride int(1 / rho)
  std::vector<int> blocks;         // blocks per stage (ResNets); empty = family default
  std::vector<std::string> cull;   // stages whose ReLUs are all removed
  std::vector<std::string> keep;   // only these stages keep ReLUs
  std::optional<std::string> thin; // thinning policy; "" = the family's default

  // Stable text form: family first, then keys in a fixed order; parse(canonical()) == *this.
  std::string canonical() const;
  // True when the spec names a family (with alpha, rho, blocks) and removes no ReLU.
  bool is_family_only() const { return cull.empty() && keep.empty() && !thin; }
};

// Parses the grammar above. Throws SpecError naming the offending part and
// listing what is accepted (stages, policies and blocks are checked against
// the family's registry entry).
ModelSpec parse_spec(const std::string& text);

// Parses `text` and refuses a spec with cull, keep or thin: what the pipeline
// commands take, since they choose those themselves. `option` names the
// option in the message ("--model").
ModelSpec parse_family_spec(const std::string& text, const std::string& option);

// "3x32x32" -> Shape. Throws SpecError, also for a side or channel count
// beyond the limits of network.h (those validate_input checks).
Shape parse_shape(const std::string& text);

// Checks what parse_spec checks of a spec made in code (the search and
// pipeline derive specs): family, alpha, rho and blocks within the limits of
// network.h. Throws SpecError.
void validate_spec(const ModelSpec& spec);
// Checks an input against the limits of network.h: channels
// 1..kMaxInputChannels, height and width 1..kMaxInputSide, classes
// 1..kMaxClasses. `where` starts the message ("input 3x32x32").
void validate_input(const InputSpec& input, const std::string& where);

// Builds the description of the reduced network. Throws SpecError for an
// unknown family, key value, stage or policy, a spatial size below 1, or a
// spec or input beyond the limits of network.h (before anything is built),
// or a count of the result that does not fit them.
Network build_network(const ModelSpec& spec, const InputSpec& input);
Network build_network(const std::string& spec, const InputSpec& input);

}  // namespace dr::arch
