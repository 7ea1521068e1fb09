#include "arch/relu_site.h"

#include <stdexcept>
#include <string>

namespace dr::arch {

ReluKind relu_kind(const Layer& l) {
  if (l.op != Op::ReLU || !l.live) return ReluKind::Identity;
  if (!l.mask) return ReluKind::Plain;
  const MaskCounts n = mask_counts(l, *l.mask);
  if (l.mask->live != n.relus || l.mask->polys != n.polys)
    throw std::invalid_argument("ReLU site '" + l.name + "' (" + l.out.str() + "): its mask says " +
                                std::to_string(l.mask->live) + " ReLU and " + std::to_string(l.mask->polys) +
                                " polynomial elements, its entries hold " + std::to_string(n.relus) + " and " +
                                std::to_string(n.polys));
  if (n.relus == 0 && n.polys == 0) return ReluKind::Identity;
  return n.relus == l.out.numel() ? ReluKind::Plain : ReluKind::Masked;
}

bool has_polynomials(const Layer& l) { return relu_kind(l) == ReluKind::Masked && l.mask->polys > 0; }

}  // namespace dr::arch
