// build_network: a family's description for a spec and an input, then the
// spec's reductions (cull/keep, thin) as ReLU sites switched off.
#include <algorithm>

#include "arch/builder.h"
#include "arch/spec.h"

namespace dr::arch {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Switches off the ReLUs the spec removes: every ReLU of a culled (or
// not-kept) stage, and in the remaining stages those whose role the thinning
// policy names. ReLUs outside the family's stages (VGG's FC ReLUs) stay.
void apply_reduction(Network& net, const ModelSpec& s, const Family& fam) {
  const ThinPolicy* thin = s.thin ? fam.policy(*s.thin) : nullptr;
  for (Layer* l : net.mutable_layers()) {
    if (l->op != Op::ReLU || !contains(net.stages, l->stage)) continue;
    const bool stage_on = s.keep.empty() ? !contains(s.cull, l->stage) : contains(s.keep, l->stage);
    l->live = stage_on && !(thin && contains(thin->roles, l->role));
  }
}

}  // namespace

Network build_network(const ModelSpec& s, const InputSpec& input) {
  const Family& fam = find_family(s.family);
  Network net;
  net.family = s.family;
  net.spec = s.canonical();
  net.input = input.shape;
  net.classes = input.classes;
  net.stages = fam.stages;
  if (input.shape.numel() <= 0 || input.classes < 1)
    throw SpecError("input " + input.shape.str() + " with " + std::to_string(input.classes) +
                    " classes: need a positive shape and at least one class");
  Builder b(net);
  fam.build(b, s, s.blocks.empty() ? fam.default_blocks : s.blocks, input.classes);
  apply_reduction(net, s, fam);
  return net;
}

}  // namespace dr::arch
