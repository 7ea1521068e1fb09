#include "mpc/model.h"

#include <cmath>
#include <random>
#include <stdexcept>

#include "arch/relu_site.h"
#include "mpc/gate.h"

namespace dr::mpc {

const std::vector<double>& model_param(const FloatModel& model, const std::string& name, int64_t numel,
                                       const std::string& what) {
  const auto it = model.params.find(name);
  if (it == model.params.end())
    throw std::runtime_error("model has no parameter '" + name + "' (" + what + " needs " + std::to_string(numel) +
                             " values)");
  if (static_cast<int64_t>(it->second.size()) != numel)
    throw std::runtime_error("model parameter '" + name + "' has " + std::to_string(it->second.size()) +
                             " values; " + what + " needs " + std::to_string(numel));
  return it->second;
}

namespace {

FoldedLinear fold_step(const Step& s, const FloatModel& model) {
  const ConvGeom& g = s.geom;
  const std::string what = (g.fc ? "FC '" : "conv '") + s.name + "'";
  FoldedLinear f;
  f.w = model_param(model, s.name + ".weight", g.weight_numel(), what);
  f.b = s.bias ? model_param(model, s.name + ".bias", g.cout, what) : std::vector<double>(size_t(g.cout), 0.0);
  if (!s.bn.empty()) {
    const std::string bw = "BatchNorm '" + s.bn + "'";
    const auto& gamma = model_param(model, s.bn + ".weight", g.cout, bw);
    const auto& beta = model_param(model, s.bn + ".bias", g.cout, bw);
    const auto& mean = model_param(model, s.bn + ".running_mean", g.cout, bw);
    const auto& var = model_param(model, s.bn + ".running_var", g.cout, bw);
    const int64_t per_out = g.weight_numel() / g.cout;
    for (int64_t o = 0; o < g.cout; ++o) {
      const auto oo = static_cast<size_t>(o);
      if (!(var[oo] + kBatchNormEps > 0))
        throw std::runtime_error("BatchNorm '" + s.bn + "': running_var[" + std::to_string(o) + "] = " +
                                 std::to_string(var[oo]) + " is not above -eps");
      const double scale = gamma[oo] / std::sqrt(var[oo] + kBatchNormEps);
      for (int64_t i = 0; i < per_out; ++i) f.w[static_cast<size_t>(o * per_out + i)] *= scale;
      f.b[oo] = (f.b[oo] - mean[oo]) * scale + beta[oo];
    }
  }
  if (s.weight_scale != 1.0)
    for (double& v : f.w) v *= s.weight_scale;
  return f;
}

int64_t quantise_value(double v, int bits, const std::string& name, size_t index) {
  const double q = std::ldexp(v, bits);
  if (!std::isfinite(q) || std::fabs(q) >= std::ldexp(1.0, 62))
    throw std::runtime_error("parameter of '" + name + "' [" + std::to_string(index) + "] = " + std::to_string(v) +
                             " does not fit the ring at f = " + std::to_string(bits) + " scale");
  return std::llround(q);
}

}  // namespace

std::vector<FoldedLinear> fold_model(const Program& program, const FloatModel& model) {
  std::vector<FoldedLinear> out;
  for (int idx : program.linear_steps) out.push_back(fold_step(program.steps[static_cast<size_t>(idx)], model));
  return out;
}

std::vector<std::vector<double>> gate_params(const Program& program, const FloatModel& model) {
  std::vector<std::vector<double>> out;
  for (int idx : program.gate_steps) {
    const Step& s = program.steps[static_cast<size_t>(idx)];
    const int64_t n = gate_of(s).param_count(s);
    out.push_back(n > 0 ? model_param(model, s.param, n, std::string(kind_name(s)) + " site '" + s.name + "'")
                        : std::vector<double>{});
  }
  return out;
}

QuantModel quantise(const Program& program, const FloatModel& model, int frac_bits) {
  check_frac_bits(frac_bits);
  const auto folded = fold_model(program, model);
  QuantModel q;
  q.frac_bits = frac_bits;
  for (size_t i = 0; i < folded.size(); ++i) {
    const std::string& name = program.linear(static_cast<int>(i)).name;
    QuantLinear l;
    for (size_t j = 0; j < folded[i].w.size(); ++j) l.w.push_back(quantise_value(folded[i].w[j], frac_bits, name, j));
    for (size_t j = 0; j < folded[i].b.size(); ++j)
      l.b.push_back(quantise_value(folded[i].b[j], 2 * frac_bits, name, j));
    q.layers.push_back(std::move(l));
  }
  const auto params = gate_params(program, model);
  for (size_t i = 0; i < params.size(); ++i) {
    const Step& s = program.gate_step(static_cast<int>(i));
    q.gates.push_back(gate_of(s).quantise(s, params[i], frac_bits));
  }
  return q;
}

void check_model(const arch::Network& net, const FloatModel& model) {
  const Program program = compile_program(net, ProgramDetail::Counts);
  fold_model(program, model);
  gate_params(program, model);
  if (!model.mean.empty() || !model.std.empty()) normalise(net.input, model, std::vector<float>(size_t(net.input.numel())));
}

FloatModel random_float_model(const arch::Network& net, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  FloatModel m;
  auto fill = [&](const std::string& name, int64_t n, double lo, double hi) {
    auto& v = m.params[name];
    v.resize(static_cast<size_t>(n));
    for (double& x : v) x = lo + (hi - lo) * (uni(rng) + 1.0) / 2.0;
  };
  for (const arch::Layer* l : net.layers()) {
    if (l->op == arch::Op::Conv || l->op == arch::Op::Linear) {
      const int64_t fan_in = l->op == arch::Op::Conv ? (l->in_ch / l->groups) * l->kernel * l->kernel : l->in_ch;
      const double a = std::sqrt(6.0 / static_cast<double>(fan_in));  // uniform with He variance
      fill(l->name + ".weight", l->params() - (l->bias ? l->out_ch : 0), -a, a);
      if (l->bias) fill(l->name + ".bias", l->out_ch, -0.1, 0.1);
    } else if (l->op == arch::Op::BatchNorm) {
      fill(l->name + ".weight", l->out.c, 0.5, 1.5);
      fill(l->name + ".bias", l->out.c, -0.2, 0.2);
      fill(l->name + ".running_mean", l->out.c, -0.2, 0.2);
      fill(l->name + ".running_var", l->out.c, 0.5, 2.0);
    } else if (l->op == arch::Op::ReLU && arch::has_polynomials(*l)) {
      const double lo[3] = {0.15, 0.4, 0.15}, hi[3] = {0.25, 0.6, 0.25};  // rows a, b, c of [3, C]
      auto& v = m.params[l->name + ".poly"];
      for (int row = 0; row < 3; ++row)
        for (int64_t c = 0; c < l->out.c; ++c) v.push_back(lo[row] + (hi[row] - lo[row]) * (uni(rng) + 1.0) / 2.0);
    }
  }
  m.mean.assign(static_cast<size_t>(net.input.c), 0.5);
  m.std.assign(static_cast<size_t>(net.input.c), 0.25);
  return m;
}

std::vector<double> normalise(const arch::Shape& shape, const std::vector<double>& mean,
                              const std::vector<double>& std, const std::vector<float>& pixels) {
  if (static_cast<int64_t>(pixels.size()) != shape.numel())
    throw std::invalid_argument("image has " + std::to_string(pixels.size()) + " values; the network takes " +
                                shape.str() + " = " + std::to_string(shape.numel()));
  const bool none = mean.empty() && std.empty();
  if (!none && (static_cast<int64_t>(mean.size()) != shape.c || static_cast<int64_t>(std.size()) != shape.c))
    throw std::invalid_argument("normalisation has " + std::to_string(mean.size()) + " means and " +
                                std::to_string(std.size()) + " stds; the input has " + std::to_string(shape.c) +
                                " channels (give one each, or none)");
  for (size_t c = 0; c < std.size(); ++c)
    if (!(std[c] > 0)) throw std::invalid_argument("normalisation std[" + std::to_string(c) + "] is not positive");
  std::vector<double> out(pixels.size());
  const int64_t hw = shape.h * shape.w;
  for (int64_t i = 0; i < shape.numel(); ++i) {
    const auto c = static_cast<size_t>(i / hw);
    const double p = pixels[static_cast<size_t>(i)];
    out[static_cast<size_t>(i)] = none ? p : (p - mean[c]) / std[c];
  }
  return out;
}

std::vector<double> normalise(const arch::Shape& shape, const FloatModel& model, const std::vector<float>& pixels) {
  return normalise(shape, model.mean, model.std, pixels);
}

}  // namespace dr::mpc
