#include "nn/relu_site.h"

#include <stdexcept>
#include <string>

namespace dr::nn {

namespace {

// Kept entries of a mask that fits its site; throws otherwise.
int64_t checked_kept(const arch::Layer& l, const arch::ReluMask& m) {
  const int64_t entries = m.channelwise ? l.out.c : l.out.numel();
  const std::string what = "ReLU site '" + l.name + "' (" + l.out.str() + "): its " +
                           (m.channelwise ? "channel-wise" : "element-wise") + " mask ";
  if (static_cast<int64_t>(m.keep.size()) != entries)
    throw std::invalid_argument(what + "has " + std::to_string(m.keep.size()) + " entries, the site needs " +
                                std::to_string(entries));
  int64_t kept = 0;
  for (uint8_t k : m.keep) {
    if (k > 1) throw std::invalid_argument(what + "holds the value " + std::to_string(k) + " (accepted: 0 or 1)");
    kept += k;
  }
  const int64_t live = m.channelwise ? kept * l.out.h * l.out.w : kept;
  if (m.live != live)
    throw std::invalid_argument(what + "says it keeps " + std::to_string(m.live) + " elements, its entries keep " +
                                std::to_string(live));
  return live;
}

}  // namespace

ReluKind relu_kind(const arch::Layer& l) {
  if (l.op != arch::Op::ReLU || !l.live) return ReluKind::Identity;
  if (!l.mask) return ReluKind::Plain;
  const int64_t live = checked_kept(l, *l.mask);
  if (live == 0) return ReluKind::Identity;
  return live == l.out.numel() ? ReluKind::Plain : ReluKind::Masked;
}

}  // namespace dr::nn
