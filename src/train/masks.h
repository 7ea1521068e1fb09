#pragma once
// Pixel-level ReLU masks on disk and on a network description (SNL-style
// linearisation: docs/method.md).
//
//  masks.pt   a pickled dict site name -> uint8 tensor of 0/1, [C, H, W]
//             (element-wise) or [C] (channel-wise): the format Python's
//             torch.load reads, like weights.pt. Written atomically.
//
// A mask keeps y = relu(x) on its 1 entries; the others pass x through
// (arch::ReluMask). python/deepreduce_model.py builds the same network from
// count's JSON plus masks.pt.
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::train {

// One site's mask and the shape it had on disk or in its score tensor
// ({C, H, W} or {C}), so that a mismatch can name both shapes.
struct SiteMask {
  arch::ReluMask mask;  // `live`: kept entries (apply_masks makes it the site's kept elements)
  std::vector<int64_t> shape;
};
using MaskSet = std::map<std::string, SiteMask>;  // site (ReLU layer) name -> mask

// The masks of the description's live masked sites (their `live` as is).
MaskSet masks_of(const arch::Network& net);

// Writes masks_of(net) to `path` (atomically). Throws std::runtime_error naming the path.
void save_masks(const std::string& path, const arch::Network& net);

// Reads a masks.pt. Throws std::runtime_error naming the file (and the site)
// on a missing, truncated or foreign file, or a tensor that is not uint8,
// not 1-D or 3-D, or holds a value other than 0, 1 and 2 (arch::SiteOp:
// identity, ReLU, polynomial). `sha256` (when not
// ""): the file's SHA-256 as recorded in `recorded_in` (a run's config.json),
// checked first.
MaskSet load_masks(const std::string& path, const std::string& sha256 = "", const std::string& recorded_in = "");

// Attaches the masks to the description's live ReLU sites of the same name
// (other sites keep what they had) and sets each one's `live` and `polys` to
// its site's ReLU and polynomial elements. Checks every mask first and changes nothing on an
// error: std::runtime_error naming the site for an unknown site, a ReLU the
// spec removed, or a shape other than the site's C x H x W or C (both shapes
// in the message).
void apply_masks(arch::Network& net, const MaskSet& masks);

// SNL's binarisation: keeps the `budget` largest scores over all the given
// sites (site name -> float scores of shape [C, H, W], one per element of
// the site) as ReLUs and makes the rest `dropped` (identities for SNL,
// polynomials for polynomial replacement), so that the masks keep exactly
// min(budget, total elements) ReLUs together. Ties go to the site earlier
// in the network's forward order, then to the lower CHW index: the same
// scores always give the same masks. Scores of shape [C] at every site (a
// channel-wise search) keep whole channels instead, largest first, each one
// that still fits the budget (its H x W elements count), as channel-wise
// masks: at most `budget` ReLUs. Throws std::runtime_error naming the site
// for a site apply_masks would refuse, a NaN score, scores per channel at
// some sites and per element at others, or a negative budget.
MaskSet keep_largest(const arch::Network& net, const std::map<std::string, torch::Tensor>& scores, int64_t budget,
                     arch::SiteOp dropped = arch::SiteOp::Identity);

}  // namespace dr::train
