#pragma once
// What a ReLU site of the description is at run time, read by every
// consumer: the LibTorch modules (nn/net.cpp), the oneDNN program
// (nn/onednn.cpp), the private runtime's program (mpc/program.cpp) and the
// training methods (train/snl.cpp). No torch here.
//
// A live ReLU with a pixel-level mask (arch::ReluMask) computes, element by
// element, what its SiteOp says: y = relu(x), y = x, or y = a*x^2 + b*x + c
// with the channel's coefficients. The two ends of that range are the cheap
// cases every execution path special-cases: a mask of identities only is an
// identity (like a ReLU the spec removed: no module, no op), one of ReLUs
// only is a plain ReLU; anything else (polynomials included) is masked.

#include "arch/network.h"

namespace dr::arch {

enum class ReluKind {
  Identity,  // not a ReLU, removed by the spec, or a mask of identities only
  Plain,     // y = relu(x) on every element
  Masked,    // per element, its SiteOp: ReLU, identity or polynomial
};

// Throws std::invalid_argument naming the layer when its mask does not fit
// the site: ops must hold C x H x W (element-wise) or C (channel-wise)
// SiteOp values, and `live` and `polys` must be what they hold (H x W
// elements per channel when channel-wise).
ReluKind relu_kind(const Layer& l);

// Whether the site has polynomial elements (and so a "<site>.poly"
// parameter); throws as relu_kind.
bool has_polynomials(const Layer& l);

}  // namespace dr::arch
