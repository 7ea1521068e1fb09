#include "train/masks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "train/weights.h"
#include "util/fs.h"
#include "util/hash.h"

namespace dr::train {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  return o.str() + "]";
}

std::string site_shapes(const arch::Layer& l) {
  return l.out.str() + " (accepted: " + shape_str({l.out.c, l.out.h, l.out.w}) + " element-wise or " +
         shape_str({l.out.c}) + " channel-wise)";
}

// The live ReLU layer called `name`; throws naming the site otherwise.
const arch::Layer& site_of(const arch::Network& net, const std::string& name, const char* what) {
  for (const arch::Layer* l : net.layers()) {
    if (l->name != name) continue;
    if (l->op != arch::Op::ReLU) break;
    if (!l->live)
      throw std::runtime_error(std::string(what) + ": ReLU site '" + name + "' was removed by the spec '" +
                               net.spec + "': there is no ReLU left to mask");
    return *l;
  }
  std::string sites;
  int shown = 0;
  for (const arch::Layer* l : net.layers())
    if (l->op == arch::Op::ReLU && l->live && shown++ < 4) sites += (sites.empty() ? "" : ", ") + l->name;
  throw std::runtime_error(std::string(what) + ": '" + name + "' is not a ReLU site of '" + net.spec +
                           "' (its sites are named like " + sites + ")");
}

// The checked mask of one site, with `live` and `polys` counted in elements of the site.
arch::ReluMask fitted(const arch::Layer& l, const SiteMask& m) {
  const std::vector<int64_t> elementwise{l.out.c, l.out.h, l.out.w}, channelwise{l.out.c};
  std::vector<int64_t> shape = m.shape;
  const int64_t n = int64_t(m.mask.ops.size());
  if (shape.empty())  // built by hand: read the shape off the entries
    shape = !m.mask.channelwise && n == l.out.numel() ? elementwise : std::vector<int64_t>{n};
  const std::string where = "masks: the mask for ReLU site '" + l.name + "'";
  if (shape != elementwise && shape != channelwise)
    throw std::runtime_error(where + " has shape " + shape_str(shape) + ", the site is " + site_shapes(l));
  arch::ReluMask r;
  r.channelwise = shape == channelwise;
  r.ops = m.mask.ops;
  try {
    const arch::MaskCounts n = arch::mask_counts(l, r);
    r.live = n.relus, r.polys = n.polys;
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("masks: ") + e.what());
  }
  return r;
}

// One tensor of masks.pt, checked: uint8, 1-D or 3-D, values 0, 1 and 2 (arch::SiteOp).
SiteMask site_mask(const std::string& path, const std::string& name, const torch::Tensor& t0) {
  const std::string where = "masks file '" + path + "': site '" + name + "'";
  if (t0.scalar_type() != torch::kUInt8)
    throw std::runtime_error(where + " has dtype " + std::string(c10::toString(t0.scalar_type())) +
                             " (accepted: uint8 of 0 identity, 1 ReLU, 2 polynomial)");
  if (t0.dim() != 1 && t0.dim() != 3)
    throw std::runtime_error(where + " has shape " + shape_str(t0.sizes().vec()) +
                             " (accepted: [C, H, W] element-wise or [C] channel-wise)");
  const torch::Tensor t = t0.contiguous().cpu();
  SiteMask m;
  m.shape = t.sizes().vec();
  m.mask.channelwise = t.dim() == 1;
  m.mask.ops.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + t.numel());
  for (uint8_t k : m.mask.ops) {
    if (k > static_cast<uint8_t>(arch::SiteOp::Poly))
      throw std::runtime_error(where + " holds the value " + std::to_string(k) +
                               " (accepted: 0 identity, 1 ReLU, 2 polynomial)");
    m.mask.live += k == static_cast<uint8_t>(arch::SiteOp::Relu);
    m.mask.polys += k == static_cast<uint8_t>(arch::SiteOp::Poly);
  }
  return m;
}

}  // namespace

MaskSet masks_of(const arch::Network& net) {
  MaskSet out;
  for (const arch::Layer* l : net.layers())
    if (l->op == arch::Op::ReLU && l->live && l->mask) {
      SiteMask m;
      m.mask = *l->mask;
      m.shape = l->mask->channelwise ? std::vector<int64_t>{l->out.c}
                                     : std::vector<int64_t>{l->out.c, l->out.h, l->out.w};
      out[l->name] = std::move(m);
    }
  return out;
}

void save_masks(const std::string& path, const arch::Network& net) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, m] : masks_of(net)) {
    auto ops = m.mask.ops;  // from_blob wants a mutable pointer; clone() copies out
    if (int64_t(ops.size()) != std::accumulate(m.shape.begin(), m.shape.end(), int64_t(1), std::multiplies<>()))
      throw std::runtime_error("masks: site '" + name + "' has " + std::to_string(ops.size()) +
                               " entries, its shape " + shape_str(m.shape) + " needs another number");
    dict.insert(name, torch::from_blob(ops.data(), m.shape, torch::kUInt8).clone());
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  util::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

MaskSet load_masks(const std::string& path, const std::string& sha256, const std::string& recorded_in) {
  if (!util::file_exists(path)) throw std::runtime_error("masks file '" + path + "' does not exist");
  const std::string data = util::read_file(path);
  if (!sha256.empty() && util::sha256_hex(data) != sha256)
    throw std::runtime_error("masks file '" + path + "' does not match the SHA-256 recorded in '" + recorded_in +
                             "': it is corrupt or was changed after the run started (restore it, or train a new run)");
  std::vector<std::pair<std::string, torch::Tensor>> items;
  try {
    items = pickled_tensors(data);
  } catch (const std::exception& e) {
    throw std::runtime_error("masks file '" + path +
                             "' is not a deepreduce masks.pt (a pickled dict site name -> uint8 tensor of 0/1): " +
                             error_line(e).substr(0, 200));
  }
  MaskSet out;
  for (const auto& [name, t] : items) out[name] = site_mask(path, name, t);
  return out;
}

void apply_masks(arch::Network& net, const MaskSet& masks) {
  // Check everything before changing anything.
  std::map<std::string, std::shared_ptr<const arch::ReluMask>> fits;
  for (const auto& [name, m] : masks)
    fits[name] = std::make_shared<const arch::ReluMask>(fitted(site_of(net, name, "masks"), m));
  for (arch::Layer* l : net.mutable_layers()) {
    auto it = fits.find(l->name);
    if (it != fits.end() && l->op == arch::Op::ReLU) l->mask = it->second;
  }
}

MaskSet keep_largest(const arch::Network& net, const std::map<std::string, torch::Tensor>& scores, int64_t budget,
                     arch::SiteOp dropped) {
  if (dropped == arch::SiteOp::Relu) throw std::logic_error("keep_largest: the dropped elements cannot be ReLUs");
  if (budget < 0) throw std::runtime_error("keep_largest: the budget is negative (" + std::to_string(budget) + ")");
  for (const auto& item : scores) site_of(net, item.first, "keep_largest");  // unknown or removed sites
  // Every score in one array, sites in forward order: an entry's index there
  // is its tie-break rank. Per channel, an entry stands for the channel's H x W elements.
  std::vector<const arch::Layer*> sites;
  std::vector<float> all;
  std::vector<int64_t> weight;  // elements per entry
  int channel_sites = 0;
  for (const arch::Layer* l : net.layers()) {
    auto it = scores.find(l->name);
    if (it == scores.end() || l->op != arch::Op::ReLU) continue;
    const std::vector<int64_t> element{l->out.c, l->out.h, l->out.w}, channel{l->out.c};
    const std::vector<int64_t> got = it->second.sizes().vec();
    if (got != element && got != channel)
      throw std::runtime_error("keep_largest: the scores of ReLU site '" + l->name + "' have shape " + shape_str(got) +
                               ", the site needs one per element: " + shape_str(element) + ", or one per channel: " +
                               shape_str(channel));
    channel_sites += got == channel && got != element;
    const torch::Tensor t = it->second.detach().to(torch::kCPU, torch::kFloat).contiguous();
    if (torch::isnan(t).any().item<bool>())
      throw std::runtime_error("keep_largest: the scores of ReLU site '" + l->name + "' hold NaN");
    all.insert(all.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    weight.insert(weight.end(), size_t(t.numel()), got == element ? 1 : l->out.h * l->out.w);
    sites.push_back(l);
  }
  const bool per_channel = channel_sites > 0;
  if (per_channel && channel_sites != int(sites.size()))
    throw std::runtime_error("keep_largest: the scores are per channel at some sites and per element at others");
  std::vector<int64_t> order(all.size());
  std::iota(order.begin(), order.end(), int64_t(0));
  const auto larger = [&](int64_t a, int64_t b) { return all[a] > all[b] || (all[a] == all[b] && a < b); };
  std::vector<uint8_t> keep(all.size(), static_cast<uint8_t>(dropped));
  if (!per_channel) {  // exactly the budget's largest
    const int64_t k = std::min(budget, int64_t(all.size()));
    std::nth_element(order.begin(), order.begin() + k, order.end(), larger);
    for (int64_t i = 0; i < k; ++i) keep[size_t(order[i])] = static_cast<uint8_t>(arch::SiteOp::Relu);
  } else {  // whole channels, largest first, each that still fits the budget
    std::sort(order.begin(), order.end(), larger);
    int64_t used = 0;
    for (const int64_t i : order)
      if (used + weight[size_t(i)] <= budget) {
        used += weight[size_t(i)];
        keep[size_t(i)] = static_cast<uint8_t>(arch::SiteOp::Relu);
      }
  }
  MaskSet out;
  size_t offset = 0;
  for (const arch::Layer* l : sites) {
    SiteMask& m = out[l->name];
    const size_t n = size_t(per_channel ? l->out.c : l->out.numel());
    m.shape = per_channel ? std::vector<int64_t>{l->out.c} : std::vector<int64_t>{l->out.c, l->out.h, l->out.w};
    m.mask.channelwise = per_channel;
    m.mask.ops.assign(keep.begin() + offset, keep.begin() + offset + n);
    const int64_t per = per_channel ? l->out.h * l->out.w : 1;
    m.mask.live = per * std::count(m.mask.ops.begin(), m.mask.ops.end(), static_cast<uint8_t>(arch::SiteOp::Relu));
    m.mask.polys = per * std::count(m.mask.ops.begin(), m.mask.ops.end(), static_cast<uint8_t>(arch::SiteOp::Poly));
    offset += n;
  }
  return out;
}

}  // namespace dr::train
