#pragma once
// Model specs: one string names a reduced network.
//   family[:key[=value]]...      e.g. resnet18:cull=S1,S4:thin:alpha=0.5:rho=0.5
// Keys: alpha=F, rho=F, blocks=N,N,..., cull=Sa,Sb, keep=Sa,Sb, thin[=POLICY].
// Order does not matter; the canonical form sorts the keys.

#include <optional>
#include <string>
#include <vector>

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
};

// Parses the grammar above. Throws SpecError naming the offending part and
// listing what is accepted. Family-specific checks (stage names, policies,
// blocks length) happen in build_network, which knows the family.
ModelSpec parse_spec(const std::string& text);

// Input of the network: image shape and number of classes.
struct InputSpec {
  Shape shape;
  int64_t classes = 0;
};

// Dataset presets: cifar10, cifar100, tinyimagenet, fashion-mnist.
InputSpec dataset_input(const std::string& dataset);
std::vector<std::string> dataset_names();
// "3x32x32" -> Shape. Throws SpecError.
Shape parse_shape(const std::string& text);

// Builds the description of the reduced network. Throws SpecError for an
// unknown family, key value, stage or policy, or a spatial size below 1.
Network build_network(const ModelSpec& spec, const InputSpec& input);
Network build_network(const std::string& spec, const InputSpec& input);

struct FamilyInfo {
  std::string name;
  std::string description;
  std::vector<std::string> stages;          // at the family's default blocks
  std::vector<std::string> thin_policies;   // first one is the default
  std::vector<int> default_blocks;          // empty when blocks= is not accepted
  std::string default_dataset;
};
const std::vector<FamilyInfo>& families();
const FamilyInfo& family_info(const std::string& name);  // throws SpecError

}  // namespace dr::arch
