#include "mpc/reference.h"

#include <cmath>
#include <limits>
#include <string>

#include "arch/relu_site.h"
#include "mpc/gate.h"
#include "mpc/linear.h"

namespace dr::mpc {

constexpr int64_t kSafe = int64_t(1) << 62;  // |value| below this: truncation and ReLU stay exact

void check_fixed_range(__int128 v, const Step& s, size_t i, const char* what) {
  if (v >= kSafe || v <= -kSafe)
    throw FixedPointOverflow("fixed-point overflow at " + std::string(kind_name(s)) + " '" + s.name +
                             "', element " + std::to_string(i) + ": the " + what + " value reaches 2^62 (" +
                             std::to_string(static_cast<double>(v)) +
                             "); use fewer fractional bits or smaller weights/inputs");
}

namespace {

// The parameters of gate step `s` in a per-gate-step list (none when the
// list stops short: a gate without parameters reads none).
template <class T>
const std::vector<T>& params_of(const std::vector<std::vector<T>>& gates, const Step& s) {
  static const std::vector<T> none;
  return size_t(s.gate_index) < gates.size() ? gates[size_t(s.gate_index)] : none;
}

std::vector<int64_t> fixed_linear(const Step& s, const QuantLinear& q, const std::vector<int64_t>& x, int f,
                                  std::vector<int64_t>* pre) {
  const ConvGeom& g = s.geom;
  const std::vector<__int128> w(q.w.begin(), q.w.end()), xi(x.begin(), x.end()), b(q.b.begin(), q.b.end());
  std::vector<__int128> z(static_cast<size_t>(g.out_numel()));
  linear_forward<__int128>(g, w.data(), xi.data(), z.data());
  add_channel_bias<__int128>(g, b.data(), z.data());
  std::vector<int64_t> y(z.size());
  if (pre) pre->resize(z.size());
  for (size_t i = 0; i < z.size(); ++i) {
    check_fixed_range(z[i], s, i, "pre-truncation");
    const auto zi = static_cast<int64_t>(z[i]);
    if (pre) (*pre)[i] = zi;
    y[i] = zi >> f;  // arithmetic shift: floor(z / 2^f)
  }
  return y;
}

// Sum over each channel's H*W positions.
template <class T>
std::vector<T> channel_sums(const ConvGeom& g, const std::vector<T>& x) {
  std::vector<T> out(static_cast<size_t>(g.cin), T(0));
  const int64_t hw = g.h * g.w;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t i = 0; i < hw; ++i) out[static_cast<size_t>(c)] += x[static_cast<size_t>(c * hw + i)];
  return out;
}

}  // namespace

std::vector<int64_t> quantise_input(const std::vector<double>& x, int frac_bits) {
  check_frac_bits(frac_bits);
  std::vector<int64_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double q = std::ldexp(x[i], frac_bits);
    if (!std::isfinite(q) || std::fabs(q) >= std::ldexp(1.0, 62))
      throw FixedPointOverflow("input element " + std::to_string(i) + " = " + std::to_string(x[i]) +
                               " does not fit the ring at f = " + std::to_string(frac_bits));
    out[i] = std::llround(q);
  }
  return out;
}

std::vector<int64_t> fixed_forward(const Program& program, const QuantModel& model, const std::vector<int64_t>& x,
                                   FixedTrace* trace, GateInputRange* comparisons) {
  if (static_cast<int64_t>(x.size()) != program.input_numel())
    throw std::invalid_argument("fixed_forward: input has " + std::to_string(x.size()) + " values, the program takes " +
                                std::to_string(program.input_numel()));
  if (model.layers.size() != program.linear_steps.size())
    throw std::invalid_argument("fixed_forward: model has " + std::to_string(model.layers.size()) +
                                " linear layers, the program " + std::to_string(program.linear_steps.size()));
  std::vector<std::vector<int64_t>> w(program.wire_numel.size());
  if (trace) trace->pre_trunc.assign(program.linear_steps.size(), {});
  std::vector<int64_t> logits;
  for (const Step& s : program.steps) {
    switch (s.kind) {
      case StepKind::Input: w[s.out] = x; break;
      case StepKind::Linear:
        w[s.out] = fixed_linear(s, model.layers[s.linear_index], w[s.in], model.frac_bits,
                                trace ? &trace->pre_trunc[s.linear_index] : nullptr);
        break;
      case StepKind::Add: {
        w[s.out].resize(w[s.in].size());
        for (size_t i = 0; i < w[s.in].size(); ++i) {
          const __int128 v = __int128(w[s.in][i]) + w[s.in2][i];
          check_fixed_range(v, s, i, "sum");
          w[s.out][i] = static_cast<int64_t>(v);
        }
        break;
      }
      case StepKind::SumPool: {
        const std::vector<__int128> xi(w[s.in].begin(), w[s.in].end());
        const auto sums = channel_sums(s.geom, xi);
        for (size_t i = 0; i < sums.size(); ++i) check_fixed_range(sums[i], s, i, "pooled");
        w[s.out].assign(sums.begin(), sums.end());
        break;
      }
      case StepKind::Gate:
        if (comparisons && s.gate != GateKind::Poly) {
          const GateInputRange r = gate_input_range(s, w[s.in]);
          comparisons->out_of_range += r.out_of_range;
          comparisons->largest = std::max(comparisons->largest, r.largest);
        }
        w[s.out] = w[s.in];
        gate_of(s).fixed_reference(s, params_of(model.gates, s), w[s.out], model.frac_bits);
        break;
      case StepKind::PairDiff:
      case StepKind::PairMax: {
        const bool diff = s.kind == StepKind::PairDiff;
        w[s.out].resize(static_cast<size_t>(s.live_count));
        for (size_t p = 0; p < w[s.out].size(); ++p) {
          const int64_t b = w[s.in][size_t(s.second[p])];
          const __int128 v = diff ? __int128(w[s.in][size_t(s.first[p])]) - b : __int128(b) + w[s.in2][p];
          check_fixed_range(v, s, p, diff ? "difference" : "maximum");
          w[s.out][p] = static_cast<int64_t>(v);
        }
        break;
      }
      case StepKind::Output: logits = w[s.in]; break;
    }
  }
  if (trace) trace->wires = std::move(w);
  return logits;
}

std::vector<double> folded_forward(const Program& program, const std::vector<FoldedLinear>& model,
                                   const std::vector<double>& x, const std::vector<std::vector<double>>& gates) {
  std::vector<std::vector<double>> w(program.wire_numel.size());
  std::vector<double> logits;
  for (const Step& s : program.steps) {
    switch (s.kind) {
      case StepKind::Input: w[s.out] = x; break;
      case StepKind::Linear: {
        const FoldedLinear& m = model.at(static_cast<size_t>(s.linear_index));
        w[s.out].resize(static_cast<size_t>(s.geom.out_numel()));
        linear_forward<double>(s.geom, m.w.data(), w[s.in].data(), w[s.out].data());
        add_channel_bias<double>(s.geom, m.b.data(), w[s.out].data());
        break;
      }
      case StepKind::Add:
        w[s.out] = w[s.in];
        for (size_t i = 0; i < w[s.out].size(); ++i) w[s.out][i] += w[s.in2][i];
        break;
      case StepKind::SumPool: w[s.out] = channel_sums(s.geom, w[s.in]); break;
      case StepKind::Gate:
        w[s.out] = w[s.in];
        gate_of(s).real_reference(s, params_of(gates, s), w[s.out]);
        break;
      case StepKind::PairDiff: w[s.out] = pair_diff(s, w[s.in]); break;
      case StepKind::PairMax: w[s.out] = pair_max(s, w[s.in], w[s.in2]); break;
      case StepKind::Output: logits = w[s.in]; break;
    }
  }
  return logits;
}

namespace {

// A ReLU site element by element, as its mask says: relu, identity, or its
// channel's polynomial a*x^2 + b*x + c from "<site>.poly" [3, C].
std::vector<double> float_site(const arch::Layer& l, const FloatModel& m, const std::vector<double>& x) {
  std::vector<double> y = x;
  if (!l.live) return y;
  const int64_t C = l.out.c, plane = l.out.h * l.out.w;
  const std::vector<double>* poly = nullptr;
  if (arch::has_polynomials(l)) poly = &model_param(m, l.name + ".poly", 3 * C, "ReLU site '" + l.name + "'");
  for (int64_t i = 0; i < l.out.numel(); ++i) {
    const arch::SiteOp op = l.mask ? l.mask->op_at(i, l.out) : arch::SiteOp::Relu;
    double& v = y[size_t(i)];
    if (op == arch::SiteOp::Relu) {
      v = std::max(v, 0.0);
    } else if (op == arch::SiteOp::Poly) {
      const auto c = size_t(i / plane), n = size_t(C);
      v = ((*poly)[c] * v + (*poly)[n + c]) * v + (*poly)[2 * n + c];
    }
  }
  return y;
}

std::vector<double> float_layer(const arch::Layer& l, const FloatModel& m, const std::vector<double>& x) {
  const std::string what = std::string(arch::op_name(l.op)) + " '" + l.name + "'";
  switch (l.op) {
    case arch::Op::Conv:
    case arch::Op::Linear: {
      const ConvGeom g = conv_geom(l);
      const auto& wt = model_param(m, l.name + ".weight", g.weight_numel(), what);
      std::vector<double> y(static_cast<size_t>(g.out_numel()));
      linear_forward<double>(g, wt.data(), x.data(), y.data());
      if (l.bias) add_channel_bias<double>(g, model_param(m, l.name + ".bias", g.cout, what).data(), y.data());
      return y;
    }
    case arch::Op::BatchNorm: {
      const int64_t c = l.out.c, hw = l.out.h * l.out.w;
      const auto& gamma = model_param(m, l.name + ".weight", c, what);
      const auto& beta = model_param(m, l.name + ".bias", c, what);
      const auto& mean = model_param(m, l.name + ".running_mean", c, what);
      const auto& var = model_param(m, l.name + ".running_var", c, what);
      std::vector<double> y(x.size());
      for (int64_t i = 0; i < c * hw; ++i) {
        const auto ch = static_cast<size_t>(i / hw);
        y[size_t(i)] = (x[size_t(i)] - mean[ch]) / std::sqrt(var[ch] + kBatchNormEps) * gamma[ch] + beta[ch];
      }
      return y;
    }
    case arch::Op::ReLU: return float_site(l, m, x);
    case arch::Op::GlobalAvgPool: {
      ConvGeom g;
      g.cin = l.in.c, g.h = l.in.h, g.w = l.in.w;
      std::vector<double> y = channel_sums(g, x);
      for (double& v : y) v /= static_cast<double>(g.h * g.w);
      return y;
    }
    case arch::Op::Flatten: return x;
    case arch::Op::MaxPool: {  // k x k windows with stride s; padding is never the maximum
      const int64_t k = l.kernel, st = l.stride, H = l.in.h, W = l.in.w, oh = l.out.h, ow = l.out.w;
      const int64_t pad = l.padding;
      std::vector<double> y(static_cast<size_t>(l.out.numel()));
      for (int64_t c = 0; c < l.out.c; ++c)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            double m = -std::numeric_limits<double>::infinity();
            for (int64_t di = 0; di < k; ++di)
              for (int64_t dj = 0; dj < k; ++dj) {
                const int64_t r = i * st - pad + di, q = j * st - pad + dj;
                if (r >= 0 && r < H && q >= 0 && q < W) m = std::max(m, x[size_t((c * H + r) * W + q)]);
              }
            y[size_t((c * oh + i) * ow + j)] = m;
          }
      return y;
    }
  }
  throw std::logic_error(what + ": unknown layer");
}

std::vector<double> float_list(const std::vector<arch::Layer>& layers, const FloatModel& m, std::vector<double> x) {
  for (const arch::Layer& l : layers) x = float_layer(l, m, x);
  return x;
}

}  // namespace

std::vector<double> float_forward(const arch::Network& net, const FloatModel& model, const std::vector<double>& x) {
  std::vector<double> cur = x;
  for (const arch::Block& b : net.blocks) {
    std::vector<double> body = float_list(b.body, model, cur);
    if (b.residual) {
      const std::vector<double> sc = float_list(b.shortcut, model, cur);
      for (size_t i = 0; i < body.size(); ++i) body[i] += sc[i];
    }
    cur = float_list(b.post, model, std::move(body));
  }
  return cur;
}

std::vector<int64_t> fixed_reference(const Program& program, const QuantModel& model, const FloatModel& norm,
                                     const std::vector<float>& pixels, GateInputRange* comparisons) {
  return fixed_forward(program, model, quantise_input(normalise(program.input, norm, pixels), model.frac_bits),
                       nullptr, comparisons);
}

void Agreement::add(const std::vector<int64_t>& priv, const std::vector<int64_t>& ref, int frac_bits) {
  if (priv.size() != ref.size())
    throw std::invalid_argument("agreement: " + std::to_string(priv.size()) + " private logits, " +
                                std::to_string(ref.size()) + " reference logits");
  ++images;
  if (argmax(priv) == argmax(ref)) ++argmax_equal;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(std::ldexp(static_cast<double>(priv[i]) - static_cast<double>(ref[i]), -frac_bits)));
  if (worst >= kFailureReal)
    ++failures;
  else
    max_abs_diff = std::max(max_abs_diff, worst);
}

nlohmann::json to_json(const Agreement& a) {
  return {{"images", a.images}, {"argmax_equal", a.argmax_equal}, {"failures", a.failures},
          {"max_abs_logit_diff", a.max_abs_diff}};
}

std::vector<double> to_double(const std::vector<int64_t>& v, int frac_bits) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::ldexp(static_cast<double>(v[i]), -frac_bits);
  return out;
}

}  // namespace dr::mpc
