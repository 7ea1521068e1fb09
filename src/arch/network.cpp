#include "arch/network.h"

#include <algorithm>

namespace dr::arch {

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

bool ReluMask::keeps(int64_t i, const Shape& s) const {
  return keep[static_cast<size_t>(channelwise ? i / (s.h * s.w) : i)] != 0;
}

int64_t Layer::relus() const {
  if (op != Op::ReLU || !live) return 0;
  return mask ? mask->live : out.numel();
}

int64_t Layer::flops() const {
  switch (op) {
    case Op::Conv: return out.numel() * (in_ch / groups) * kernel * kernel;
    case Op::Linear: return in_ch * out_ch;
    default: return 0;
  }
}

int64_t Layer::params() const {
  switch (op) {
    case Op::Conv: return out_ch * (in_ch / groups) * kernel * kernel + (bias ? out_ch : 0);
    case Op::BatchNorm: return 2 * out.c;
    case Op::Linear: return in_ch * out_ch + (bias ? out_ch : 0);
    default: return 0;
  }
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

Totals Network::totals() const {
  Totals t;
  for (const auto* l : layers()) t += Totals{l->relus(), l->flops(), l->params()};
  return t;
}

std::vector<StageTotals> Network::stage_totals() const {
  std::vector<StageTotals> rows;
  for (const auto& s : stages) rows.push_back({s, {}});
  for (const auto* l : layers()) {
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const StageTotals& r) { return r.name == l->stage; });
    if (it == rows.end()) it = rows.insert(rows.end(), {l->stage, {}});
    it->totals += Totals{l->relus(), l->flops(), l->params()};
  }
  return rows;
}

}  // namespace dr::arch
