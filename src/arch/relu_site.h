#pragma once
// What a ReLU site of the description is at run time, read by every
// consumer: the LibTorch modules (nn/net.cpp), the oneDNN program
// (nn/onednn.cpp), the private runtime's program (mpc/program.cpp) and the
// training methods (train/snl.cpp). No torch here.
//
// A live ReLU with a pixel-level mask (arch::ReluMask) computes y = relu(x)
// on its kept elements and y = x elsewhere. The two ends of that range are
// the cheap cases every execution path special-cases: a mask that keeps
// nothing is an identity (like a ReLU the spec removed: no module, no op),
// one that keeps everything is a plain ReLU.

#include "arch/network.h"

namespace dr::arch {

enum class ReluKind {
  Identity,  // not a ReLU, removed by the spec, or a mask that keeps nothing
  Plain,     // y = relu(x) on every element
  Masked,    // y = relu(x) on the kept elements, y = x elsewhere
};

// Throws std::invalid_argument naming the layer when its mask does not fit
// the site: keep must hold C x H x W (element-wise) or C (channel-wise)
// entries of 0 or 1, and `live` must be what they keep (C x H x W elements
// per kept channel when channel-wise).
ReluKind relu_kind(const Layer& l);

}  // namespace dr::arch
