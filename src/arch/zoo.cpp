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

// The one validation layer: the spec and the input are checked against the
// limits of network.h before anything is built, the Builder checks every
// layer's shapes and counts as it appends it, and the sums are checked last,
// so a network that is returned has no count that does not fit.
Network build_network(const ModelSpec& s, const InputSpec& input) {
  const Family& fam = find_family(s.family);
  validate_spec(s);
  validate_input(input, "input " + input.shape.str());
  if (const Network* file = file_network(fam)) {  // a model file: its own network, reduced as the spec says
    if (!(input.shape == file->input) || input.classes != file->classes)
      throw SpecError("model '" + s.family + "' takes " + file->input.str() + " with " +
                      std::to_string(file->classes) + " classes, not " + input.shape.str() + " with " +
                      std::to_string(input.classes));
    Network net = *file;
    net.spec = s.canonical();
    apply_reduction(net, s, fam);
    net.totals();
    return net;
  }
  Network net;
  net.family = s.family;
  net.spec = s.canonical();
  net.input = input.shape;
  net.classes = input.classes;
  net.stages = fam.stages;
  Builder b(net);
  fam.build(b, s, s.blocks.empty() ? fam.default_blocks : s.blocks, input.classes);
  apply_reduction(net, s, fam);
  net.totals();  // throws when a sum does not fit
  return net;
}

}  // namespace dr::arch
