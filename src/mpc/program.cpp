#include "mpc/program.h"

#include <charconv>
#include <map>

#include "arch/relu_site.h"
#include "mpc/gate.h"

namespace dr::mpc {

const char* step_kind_name(StepKind k) {
  switch (k) {
    case StepKind::Input: return "input";
    case StepKind::Linear: return "linear";
    case StepKind::Add: return "add";
    case StepKind::SumPool: return "sumpool";
    case StepKind::Gate: return "gate";
    case StepKind::PairDiff: return "pairdiff";
    case StepKind::PairMax: return "pairmax";
    case StepKind::Output: return "output";
  }
  return "?";
}

std::string relu_gate_name(const ReluGateChoice& c) {
  const bool dcf = c.kind == ReluGateChoice::Kind::Dcf;
  if (dcf && c.bits == 64) return "dcf";
  return (dcf ? "dcf:" : "dpf:") + std::to_string(c.bits);
}

ReluGateChoice parse_relu_gate(const std::string& text) {
  ReluGateChoice c;
  if (text == "dcf") return c;
  const bool dcf = text.rfind("dcf:", 0) == 0, dpf = text.rfind("dpf:", 0) == 0;
  const std::string digits = dcf || dpf ? text.substr(4) : "";
  int bits = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || bits < ReluGateChoice::kMinBits ||
      bits > ReluGateChoice::kMaxBits)
    throw std::invalid_argument("ReLU gate '" + text + "': accepted dcf (one round, a DCF on all 64 bits), dcf:N "
                                "(one round, a DCF on the low N bits) or dpf:N (two rounds, a DPF on the low N "
                                "bits); the N-bit gates are exact for inputs within +-2^(N-1), N in " +
                                std::to_string(ReluGateChoice::kMinBits) + ".." +
                                std::to_string(ReluGateChoice::kMaxBits));
  c.kind = dcf ? ReluGateChoice::Kind::Dcf : ReluGateChoice::Kind::Dpf;
  c.bits = bits;
  return c;
}

ConvGeom conv_geom(const arch::Layer& l) {
  ConvGeom g;
  g.cin = l.in_ch;
  g.cout = l.out_ch;
  if (l.op == arch::Op::Linear) {
    g.fc = true;
    return g;
  }
  g.h = l.in.h;
  g.w = l.in.w;
  g.oh = l.out.h;
  g.ow = l.out.w;
  g.k = l.kernel;
  g.stride = l.stride;
  g.pad = l.padding;
  g.groups = l.groups;
  return g;
}

namespace {

Step make_step(StepKind kind, const std::string& name, int in, int in2, int out) {
  Step s;
  s.kind = kind;
  s.name = name;
  s.in = in;
  s.in2 = in2;
  s.out = out;
  return s;
}

class Compiler {
 public:
  Compiler(const arch::Network& net, ProgramDetail detail, ReluGateChoice relu_gate) : net_(net), detail_(detail) {
    program_.relu_gate = relu_gate;
    program_.input = net.input;
    program_.classes = net.classes;
    program_.input_wire = new_wire(net.input.numel());
  }

  Program run() {
    add_step(make_step(StepKind::Input, "input", -1, -1, program_.input_wire));
    int cur = program_.input_wire;
    for (const arch::Block& b : net_.blocks) {
      const int body = compile_list(b.body, cur);
      if (b.residual) {
        const int shortcut = compile_list(b.shortcut, cur);
        Step s = make_step(StepKind::Add, b.name + ".add", body, shortcut, new_wire(program_.wire_numel[body]));
        cur = s.out;
        add_step(std::move(s));
      } else {
        if (!b.shortcut.empty())
          throw UnsupportedError("block '" + b.name + "' has a shortcut but is not residual");
        cur = body;
      }
      cur = compile_list(b.post, cur);
    }
    if (pool_pending_) throw UnsupportedError(pool_name_ + ": a global average pool must be followed by an FC");
    if (program_.wire_numel[cur] != net_.classes)
      throw UnsupportedError("network '" + net_.spec + "' ends with " + std::to_string(program_.wire_numel[cur]) +
                             " values, not its " + std::to_string(net_.classes) + " classes");
    program_.output_wire = cur;
    add_step(make_step(StepKind::Output, "output", cur, -1, -1));
    return std::move(program_);
  }

 private:
  int new_wire(int64_t numel) {
    program_.wire_numel.push_back(numel);
    return static_cast<int>(program_.wire_numel.size()) - 1;
  }
  void add_step(Step s) {
    if (s.kind == StepKind::Linear) {
      s.linear_index = static_cast<int>(program_.linear_steps.size());
      program_.linear_steps.push_back(static_cast<int>(program_.steps.size()));
    } else if (s.kind == StepKind::Gate) {
      s.gate_index = static_cast<int>(program_.gate_steps.size());
      program_.gate_steps.push_back(static_cast<int>(program_.steps.size()));
    }
    program_.steps.push_back(std::move(s));
  }
  std::string where(const arch::Layer& l) const {
    return "layer '" + l.name + "' (" + arch::op_name(l.op) + ") of '" + net_.spec + "'";
  }

  int compile_list(const std::vector<arch::Layer>& layers, int cur) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const arch::Layer& l = layers[i];
      if (program_.wire_numel[cur] != l.in.numel())
        throw UnsupportedError(where(l) + ": expects " + l.in.str() + " but its input wire has " +
                               std::to_string(program_.wire_numel[cur]) + " elements");
      if (pool_pending_ && l.op != arch::Op::Flatten && l.op != arch::Op::Linear)
        throw UnsupportedError(pool_name_ + ": a global average pool must be followed by an FC, not by " + where(l));
      switch (l.op) {
        case arch::Op::Conv: {
          const arch::Layer* bn =
              (i + 1 < layers.size() && layers[i + 1].op == arch::Op::BatchNorm) ? &layers[i + 1] : nullptr;
          cur = linear(l, bn, cur);
          if (bn) ++i;
          break;
        }
        case arch::Op::Linear: cur = linear(l, nullptr, cur); break;
        case arch::Op::BatchNorm:
          throw UnsupportedError(where(l) + ": a BatchNorm with no convolution right before it cannot be folded; "
                                 "the private runtime folds every BatchNorm into the conv before it");
        case arch::Op::ReLU: cur = relu(l, cur); break;
        case arch::Op::MaxPool: cur = maxpool(l, cur); break;
        case arch::Op::GlobalAvgPool: {
          Step s = make_step(StepKind::SumPool, l.name, cur, -1, new_wire(l.out.c));
          s.geom.cin = s.geom.cout = l.in.c;
          s.geom.h = l.in.h;
          s.geom.w = l.in.w;
          pool_scale_ = 1.0 / static_cast<double>(l.in.h * l.in.w);
          pool_pending_ = true;
          pool_name_ = where(l);
          cur = s.out;
          add_step(std::move(s));
          break;
        }
        case arch::Op::Flatten: break;  // same elements, same order: no step
      }
    }
    return cur;
  }

  int linear(const arch::Layer& l, const arch::Layer* bn, int cur) {
    Step s = make_step(StepKind::Linear, l.name, cur, -1, -1);
    s.geom = conv_geom(l);
    const ConvGeom& g = s.geom;
    if (g.fc) {
      s.weight_scale = pool_scale_;
      pool_scale_ = 1.0;
      pool_pending_ = false;
    } else if (g.groups < 1 || g.cin % g.groups || g.cout % g.groups || g.cin != l.in.c) {
      throw UnsupportedError(where(l) + ": inconsistent channels/groups");
    }
    if (g.out_numel() != l.out.numel()) throw UnsupportedError(where(l) + ": output size does not match its shape");
    s.bias = l.bias;
    if (bn) s.bn = bn->name;
    s.out = new_wire(g.out_numel());
    add_step(std::move(s));
    return program_.steps.back().out;
  }

  // A ReLU site as arch::relu_kind classifies it for every consumer: an
  // identity is no step (no key, no bytes), a plain ReLU a ReLU gate step on
  // every element, a masked one a ReLU gate step on its ReLU elements and a
  // polynomial gate step on its polynomial elements (each only if it has
  // any), one after the other on the same wire. The ReLU step comes first
  // and is built as before polynomials existed, so a site without them
  // compiles to the same program.
  int relu(const arch::Layer& l, int cur) {
    arch::ReluKind kind;
    try {
      kind = arch::relu_kind(l);
    } catch (const std::invalid_argument& e) {
      throw UnsupportedError(where(l) + ": " + e.what());
    }
    if (kind == arch::ReluKind::Identity) return cur;
    const int64_t relus = kind == arch::ReluKind::Plain ? l.out.numel() : l.mask->live;
    const int64_t polys = kind == arch::ReluKind::Plain ? 0 : l.mask->polys;
    if (relus > 0) cur = gate_step(l, GateKind::Relu, arch::SiteOp::Relu, relus, kind == arch::ReluKind::Plain, cur);
    if (polys > 0) cur = gate_step(l, GateKind::Poly, arch::SiteOp::Poly, polys, false, cur);
    if (relus > 0 && polys > 0 && polys_open_with_relus())
      program_.steps[program_.steps.size() - 2].opens_with_next = true;
    return cur;
  }

  // Max pooling, k x k with stride s and padding p (VGG16's 2x2 / 2, the
  // 3x3 / 2 / 1 of torchvision's ResNets), as levels of pairwise maxima: each
  // output's window holds its in-bounds inputs (padding is never the maximum);
  // a level pairs a window's elements in order, an odd last one with itself
  // (max(a, a) = a), and halves the window, until one element is left. The
  // pairs of one level are laid out window after window. 2x2 / 2 gives its
  // rows' pairs, then the pair of their maxima: two levels, 2 O then O pairs.
  int maxpool(const arch::Layer& l, int cur) {
    const int64_t C = l.out.c, oh = l.out.h, ow = l.out.w, H = l.in.h, W = l.in.w;
    const int64_t k = l.kernel, st = l.stride, pad = l.padding;
    if (k < 2)
      throw UnsupportedError(where(l) + ": the private runtime runs max pooling over windows of 2x2 or more, not " +
                             std::to_string(k) + "x" + std::to_string(k));
    // The in-bounds extent of window i along a side of `size` elements.
    auto extent = [&](int64_t i, int64_t size) {
      const int64_t lo = std::max<int64_t>(0, i * st - pad), hi = std::min(size, i * st - pad + k);
      return std::pair{lo, hi};
    };
    if (detail_ == ProgramDetail::Counts) {  // window sizes with their multiplicities, no indices
      std::map<int64_t, int64_t> rows, cols, sizes;
      for (int64_t y = 0; y < oh; ++y) ++rows[extent(y, H).second - extent(y, H).first];
      for (int64_t x = 0; x < ow; ++x) ++cols[extent(x, W).second - extent(x, W).first];
      for (const auto& [r, nr] : rows)
        for (const auto& [c, nc] : cols) sizes[r * c] += C * nr * nc;
      while (sizes.rbegin()->first > 1) {
        std::map<int64_t, int64_t> next;
        int64_t n = 0;
        for (const auto& [size, count] : sizes) n += count * ((size + 1) / 2), next[(size + 1) / 2] += count;
        cur = pairwise_max(l, cur, {}, {}, n);
        sizes = std::move(next);
      }
      return cur;
    }
    // Indices: the windows' elements in the input wire, output by output.
    std::vector<std::vector<int64_t>> windows(static_cast<size_t>(C * oh * ow));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x) {
          auto& win = windows[static_cast<size_t>((c * oh + y) * ow + x)];
          const auto [r0, r1] = extent(y, H);
          const auto [c0, c1] = extent(x, W);
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t q = c0; q < c1; ++q) win.push_back((c * H + r) * W + q);
        }
    while (true) {
      size_t largest = 0;
      for (const auto& w : windows) largest = std::max(largest, w.size());
      if (largest <= 1) return cur;
      std::vector<int64_t> first, second;
      int64_t at = 0;  // the next level's wire position
      for (auto& w : windows) {
        std::vector<int64_t> halved;
        for (size_t j = 0; j < w.size(); j += 2) {
          first.push_back(w[j]);
          second.push_back(w[std::min(j + 1, w.size() - 1)]);
          halved.push_back(at++);
        }
        w = std::move(halved);
      }
      const int64_t n = static_cast<int64_t>(first.size());
      cur = pairwise_max(l, cur, std::move(first), std::move(second), n);
    }
  }

  // out[p] = max(in[first[p]], in[second[p]]) = in[second[p]] + relu(in[first[p]] - in[second[p]]).
  int pairwise_max(const arch::Layer& l, int cur, std::vector<int64_t> first, std::vector<int64_t> second, int64_t n) {
    Step diff = make_step(StepKind::PairDiff, l.name, cur, -1, new_wire(n));
    diff.live_count = n;
    diff.first = std::move(first);
    diff.second = second;
    const int diff_wire = diff.out;
    add_step(std::move(diff));
    Step gate = make_step(StepKind::Gate, l.name, diff_wire, -1, new_wire(n));
    gate.gate = GateKind::Max;
    gate.comparison = program_.relu_gate;
    gate.live_count = n;
    if (detail_ == ProgramDetail::Indices) {
      gate.live.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) gate.live[static_cast<size_t>(i)] = i;
    }
    const int relu_wire = gate.out;
    add_step(std::move(gate));
    Step max = make_step(StepKind::PairMax, l.name, cur, relu_wire, new_wire(n));
    max.live_count = n;
    max.second = std::move(second);
    add_step(std::move(max));
    return program_.steps.back().out;
  }

  // One gate step on the `count` elements of site `l` whose op is `op` (all
  // of them when `every`).
  int gate_step(const arch::Layer& l, GateKind gate, arch::SiteOp op, int64_t count, bool every, int cur) {
    Step s = make_step(StepKind::Gate, l.name, cur, -1, -1);
    s.gate = gate;
    if (gate == GateKind::Relu) s.comparison = program_.relu_gate;
    const int64_t n = l.out.numel();
    s.live_count = count;
    if (detail_ == ProgramDetail::Indices) {
      s.live.reserve(static_cast<size_t>(count));
      for (int64_t i = 0; i < n; ++i)
        if (every || l.mask->op_at(i, l.out) == op) s.live.push_back(i);
    }
    if (gate == GateKind::Poly) {  // per-channel coefficients, a parameter of the site
      s.param = l.name + ".poly";
      s.channels = l.out.c;
      s.plane = l.out.h * l.out.w;
    }
    s.out = new_wire(n);
    add_step(std::move(s));
    return program_.steps.back().out;
  }

  const arch::Network& net_;
  const ProgramDetail detail_;
  Program program_;
  double pool_scale_ = 1.0;  // 1/(H*W) of a global pool waiting for its FC
  bool pool_pending_ = false;
  std::string pool_name_;
};

}  // namespace

Program compile_program(const arch::Network& net, ProgramDetail detail, ReluGateChoice relu_gate) {
  return Compiler(net, detail, relu_gate).run();
}

}  // namespace dr::mpc
