#include "arch/network.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dr::arch {

void throw_bad_count(const char* what, int64_t a, int64_t b) {
  if (a < 0 || b < 0)
    throw SpecError(std::string(what) + ": a count is negative (" + std::to_string(a) + ", " + std::to_string(b) +
                    ")");
  throw SpecError(std::string(what) + " exceed the limit of 2^62 = " + std::to_string(limits::kMaxCount));
}

std::string Shape::str() const {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

const char* op_name(Op op) {
  switch (op) {
    case Op::Conv: return "conv";
    case Op::BatchNorm: return "bn";
    case Op::ReLU: return "relu";
    case Op::MaxPool: return "maxpool";
    case Op::GlobalAvgPool: return "avgpool";
    case Op::Flatten: return "flatten";
    case Op::Linear: return "fc";
  }
  return "?";
}

const char* site_op_name(SiteOp op) {
  switch (op) {
    case SiteOp::Identity: return "identity";
    case SiteOp::Relu: return "relu";
    case SiteOp::Poly: return "poly";
  }
  return "?";
}

MaskCounts mask_counts(const Layer& site, const ReluMask& m) {
  const int64_t entries = m.channelwise ? site.out.c : site.out.numel();
  const std::string what = "ReLU site '" + site.name + "' (" + site.out.str() + "): its " +
                           (m.channelwise ? "channel-wise" : "element-wise") + " mask ";
  if (static_cast<int64_t>(m.ops.size()) != entries)
    throw std::invalid_argument(what + "has " + std::to_string(m.ops.size()) + " entries, the site needs " +
                                std::to_string(entries));
  MaskCounts n;
  for (uint8_t k : m.ops) {
    if (k > static_cast<uint8_t>(SiteOp::Poly))
      throw std::invalid_argument(what + "holds the value " + std::to_string(k) +
                                  " (accepted: 0 identity, 1 ReLU, 2 polynomial)");
    n.relus += k == static_cast<uint8_t>(SiteOp::Relu);
    n.polys += k == static_cast<uint8_t>(SiteOp::Poly);
  }
  if (m.channelwise) n.relus *= site.out.h * site.out.w, n.polys *= site.out.h * site.out.w;
  return n;
}

namespace {

// Rethrows a count's SpecError with the layer's name in front.
template <class F>
int64_t for_layer(const Layer& l, F count) {
  try {
    return count();
  } catch (const SpecError& e) {
    throw SpecError("layer '" + l.name + "': " + e.what());
  }
}

// Weights of one conv filter: (in_ch / groups) x k x k.
int64_t filter_size(const Layer& l, const char* what) {
  if (l.groups < 1) throw SpecError("groups must be >= 1, got " + std::to_string(l.groups));
  return count_mul(count_mul(l.in_ch / l.groups, l.kernel, what), l.kernel, what);
}

}  // namespace

void Layer::check_counts() const {
  in.numel();
  out.numel();
  relus();
  flops();
  params();
}

int64_t Layer::relus() const {
  if (op != Op::ReLU || !live) return 0;
  return for_layer(*this, [&] {
    const int64_t all = out.numel();
    if (!mask) return all;
    // A mask comes from outside (an architecture file, SNL): its count must lie within the site.
    if (mask->live < 0 || mask->live > all)
      throw SpecError("its mask keeps " + std::to_string(mask->live) + " elements, outside 0.." +
                      std::to_string(all) + " (" + out.str() + ")");
    return mask->live;
  });
}

int64_t Layer::polys() const {
  if (op != Op::ReLU || !live || !mask) return 0;
  return for_layer(*this, [&] {
    if (mask->polys < 0 || mask->polys > out.numel() - mask->live)
      throw SpecError("its mask has " + std::to_string(mask->polys) + " polynomial elements, outside 0.." +
                      std::to_string(out.numel() - mask->live) + " (" + out.str() + ", " +
                      std::to_string(mask->live) + " ReLUs)");
    return mask->polys;
  });
}

int64_t Layer::flops() const {
  return for_layer(*this, [&]() -> int64_t {
    switch (op) {
      case Op::Conv: return count_mul(out.numel(), filter_size(*this, "FLOPs"), "FLOPs");
      case Op::Linear: return count_mul(in_ch, out_ch, "FLOPs");
      default: return 0;
    }
  });
}

int64_t Layer::params() const {
  return for_layer(*this, [&]() -> int64_t {
    const int64_t b = bias ? out_ch : 0;
    switch (op) {
      case Op::Conv: return count_add(count_mul(out_ch, filter_size(*this, "params"), "params"), b, "params");
      case Op::BatchNorm: return count_mul(2, out.c, "params");
      case Op::Linear: return count_add(count_mul(in_ch, out_ch, "params"), b, "params");
      case Op::ReLU: return polys() > 0 ? count_mul(3, out.c, "params") : 0;
      default: return 0;
    }
  });
}

std::vector<const Layer*> Network::layers() const {
  std::vector<const Layer*> out;
  for (const auto& b : blocks)
    for (const auto* list : {&b.body, &b.shortcut, &b.post})
      for (const auto& l : *list) out.push_back(&l);
  return out;
}

std::vector<Layer*> Network::mutable_layers() {
  std::vector<Layer*> out;
  for (auto& b : blocks)
    for (auto* list : {&b.body, &b.shortcut, &b.post})
      for (auto& l : *list) out.push_back(&l);
  return out;
}

Shape Network::output() const {
  const auto all = layers();
  return all.empty() ? input : all.back()->out;
}

namespace {

// Rethrows a sum's SpecError with the network's spec and input in front.
template <class F>
auto for_network(const Network& net, F sum) {
  try {
    return sum();
  } catch (const SpecError& e) {
    throw SpecError("network '" + net.spec + "' on input " + net.input.str() + ": " + e.what());
  }
}

}  // namespace

bool Network::masked() const {
  for (const auto* l : layers())
    if (l->op == Op::ReLU && l->live && l->mask) return true;
  return false;
}

Totals Network::totals() const {
  return for_network(*this, [&] {
    Totals t;
    for (const auto* l : layers()) t += Totals{l->relus(), l->flops(), l->params(), l->polys()};
    return t;
  });
}

std::vector<StageTotals> Network::stage_totals() const {
  return for_network(*this, [&] {
    std::vector<StageTotals> rows;
    for (const auto& s : stages) rows.push_back({s, {}});
    for (const auto* l : layers()) {
      auto it = std::find_if(rows.begin(), rows.end(), [&](const StageTotals& r) { return r.name == l->stage; });
      if (it == rows.end()) it = rows.insert(rows.end(), {l->stage, {}});
      it->totals += Totals{l->relus(), l->flops(), l->params(), l->polys()};
    }
    return rows;
  });
}

}  // namespace dr::arch
