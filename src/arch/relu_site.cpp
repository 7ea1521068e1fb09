#include "arch/relu_site.h"

#include <stdexcept>
#include <string>

namespace dr::arch {

ReluKind relu_kind(const Layer& l) {
  if (l.op != Op::ReLU || !l.live) return ReluKind::Identity;
  if (!l.mask) return ReluKind::Plain;
  const int64_t live = mask_live(l, *l.mask);
  if (l.mask->live != live)
    throw std::invalid_argument("ReLU site '" + l.name + "' (" + l.out.str() + "): its mask says it keeps " +
                                std::to_string(l.mask->live) + " elements, its entries keep " + std::to_string(live));
  if (live == 0) return ReluKind::Identity;
  return live == l.out.numel() ? ReluKind::Plain : ReluKind::Masked;
}

}  // namespace dr::arch
