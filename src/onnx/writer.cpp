// arch::Network + weights -> ONNX (writer.h). Node names are "/<layer>/<Op>",
// which onnx::read_model turns back into the layer's name.
#include "onnx/writer.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "arch/relu_site.h"
#include "util/fs.h"

#ifdef DEEPREDUCE_WITH_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace dr::onnx {

#ifndef DEEPREDUCE_WITH_ONNX

WriteReport write_model(const arch::Network&, const std::map<std::string, Tensor>&, const std::string& path,
                        const WriteOptions&) {
  throw ReadError(path + ": this deepreduce was built without ONNX support: install Debian's libonnx-dev "
                         "(apt-get install libonnx-dev, which `make deps` does) and rebuild");
}

#else

namespace {

namespace pb = ::onnx;
using arch::Layer;
using arch::Op;

constexpr int64_t kOpset = 13;
constexpr int64_t kIrVersion = 7;  // what opset 13 goes with
constexpr float kBnEps = 1e-5f;    // deepreduce's BatchNorm

class GraphWriter {
 public:
  GraphWriter(const arch::Network& net, const std::map<std::string, Tensor>& w, const WriteOptions& o)
      : net_(net), w_(w), o_(o) {}

  pb::ModelProto build() {
    pb::ModelProto m;
    m.set_ir_version(kIrVersion);
    m.set_producer_name("deepreduce");
    m.set_producer_version(o_.producer_version);
    auto* opset = m.add_opset_import();
    opset->set_domain("");
    opset->set_version(kOpset);
    g_ = m.mutable_graph();
    g_->set_name(net_.label());
    value_info(g_->add_input(), "image", {net_.input.c, net_.input.h, net_.input.w});
    std::string cur = "image";
    for (const auto& b : net_.blocks) {
      const std::string in = cur;
      cur = layers(b.body, in);
      if (b.residual) {
        const std::string sc = layers(b.shortcut, in);
        cur = node("Add", b.name + ".add", {cur, sc});
      }
      cur = layers(b.post, cur);
    }
    // The last node's output is the graph's output.
    g_->mutable_node(g_->node_size() - 1)->set_output(0, "logits");
    value_info(g_->add_output(), "logits", {net_.classes});
    return m;
  }

  WriteReport report;

 private:
  void value_info(pb::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(pb::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("n");
    for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  }

  const Tensor& weight(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = w_.find(name);
    if (it == w_.end()) throw std::runtime_error("the weights have no '" + name + "'");
    if (it->second.shape != shape) throw std::runtime_error("weight '" + name + "' does not have the layer's shape");
    return it->second;
  }

  // The weight `name` of the layer's shape, as an initializer of that name.
  std::string weight_initializer(const std::string& name, const std::vector<int64_t>& shape) {
    return initializer(name, shape, weight(name, shape).values);
  }

  std::string initializer(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(pb::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    ++report.initializers;
    return name;
  }

  // A node "/<layer>/<op>" reading `inputs`; returns its output's name.
  pb::NodeProto* add_node(const std::string& op, const std::string& layer, const std::vector<std::string>& inputs,
                          const std::string& suffix = "") {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name("/" + layer + "/" + op + suffix);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(n->name() + "_output");
    ++report.nodes;
    return n;
  }
  std::string node(const std::string& op, const std::string& layer, const std::vector<std::string>& inputs,
                   const std::string& suffix = "") {
    return add_node(op, layer, inputs, suffix)->output(0);
  }
  static void ints(pb::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(pb::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  // A square window: kernel, strides and one padding on every side.
  static void window(pb::NodeProto* n, const Layer& l) {
    ints(n, "kernel_shape", {l.kernel, l.kernel});
    ints(n, "strides", {l.stride, l.stride});
    ints(n, "pads", {l.padding, l.padding, l.padding, l.padding});
  }
  static void integer(pb::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(pb::AttributeProto::INT);
    a->set_i(v);
  }

  // The channel-masked site that a split of the convolution list[i] (+ its
  // BatchNorm) can carry in the OnnxBridge form, or null.
  const Layer* split_site(const std::vector<Layer>& list, size_t i) const {
    if (o_.masks != MaskForm::OnnxBridge || list[i].op != Op::Conv || list[i].groups != 1) return nullptr;
    size_t s = i + 1;
    if (s < list.size() && list[s].op == Op::BatchNorm) ++s;
    if (s >= list.size() || list[s].op != Op::ReLU || arch::relu_kind(list[s]) != arch::ReluKind::Masked ||
        !list[s].mask->channelwise || arch::has_polynomials(list[s]))
      return nullptr;
    return &list[s];
  }

  std::string layers(const std::vector<Layer>& list, std::string cur) {
    for (size_t i = 0; i < list.size(); ++i) {
      const Layer& l = list[i];
      const Layer* next_bn = l.op == Op::Conv && i + 1 < list.size() && list[i + 1].op == Op::BatchNorm ? &list[i + 1] : nullptr;
      if (const Layer* site = split_site(list, i)) {
        cur = split_conv(l, next_bn, *site, cur);
        i += next_bn ? 2 : 1;  // the BatchNorm and the site are in the split
        continue;
      }
      const Layer* bn = o_.fold_bn ? next_bn : nullptr;
      switch (l.op) {
        case Op::Conv: cur = conv(l, bn, cur); break;
        case Op::BatchNorm: cur = batch_norm(l, cur); break;
        case Op::ReLU: cur = relu_site(l, cur); break;
        case Op::MaxPool: {
          auto* n = add_node("MaxPool", l.name, {cur});
          window(n, l);
          cur = n->output(0);
          break;
        }
        case Op::GlobalAvgPool: cur = node("GlobalAveragePool", l.name, {cur}); break;
        case Op::Flatten: {
          auto* n = add_node("Flatten", l.name, {cur});
          integer(n, "axis", 1);
          cur = n->output(0);
          break;
        }
        case Op::Linear: {
          std::vector<std::string> in = {cur, weight_initializer(l.name + ".weight", {l.out_ch, l.in_ch})};
          if (l.bias) in.push_back(weight_initializer(l.name + ".bias", {l.out_ch}));
          auto* n = add_node("Gemm", l.name, in);
          integer(n, "transB", 1);
          cur = n->output(0);
          break;
        }
      }
      if (bn) ++i, ++report.folded_bn;  // folded into the convolution
    }
    return cur;
  }

  // A convolution's weight and bias, with `bn` (if any) folded in:
  // y = g (conv(x) + b - mean) / sqrt(var + eps) + beta.
  struct ConvWeights {
    std::vector<int64_t> shape;  // O x I/groups x k x k
    std::vector<float> w, b;
    bool bias = false;
  };
  ConvWeights conv_weights(const Layer& l, const Layer* bn) const {
    ConvWeights c{{l.out_ch, l.in_ch / l.groups, l.kernel, l.kernel}, {}, {}, l.bias || bn};
    c.w = weight(l.name + ".weight", c.shape).values;
    c.b.assign(static_cast<size_t>(l.out_ch), 0.f);
    if (l.bias) c.b = weight(l.name + ".bias", {l.out_ch}).values;
    if (!bn) return c;
    const std::vector<int64_t> ch = {l.out_ch};
    const auto &g = weight(bn->name + ".weight", ch).values, &beta = weight(bn->name + ".bias", ch).values;
    const auto &mean = weight(bn->name + ".running_mean", ch).values, &var = weight(bn->name + ".running_var", ch).values;
    const size_t per = c.w.size() / static_cast<size_t>(l.out_ch);
    for (size_t o = 0; o < static_cast<size_t>(l.out_ch); ++o) {
      const double s = g[o] / std::sqrt(static_cast<double>(var[o]) + kBnEps);
      for (size_t k = 0; k < per; ++k) c.w[o * per + k] = static_cast<float>(c.w[o * per + k] * s);
      c.b[o] = static_cast<float>((c.b[o] - mean[o]) * s + beta[o]);
    }
    return c;
  }

  std::string conv(const Layer& l, const Layer* bn, const std::string& cur) {
    const ConvWeights c = conv_weights(l, bn);
    std::vector<std::string> in = {cur, initializer(l.name + ".weight", c.shape, c.w)};
    if (c.bias) in.push_back(initializer(l.name + ".bias", {l.out_ch}, c.b));
    return conv_node(l, in, "");
  }
  std::string conv_node(const Layer& l, const std::vector<std::string>& in, const std::string& suffix) {
    auto* n = add_node("Conv", l.name, in, suffix);
    window(n, l);
    ints(n, "dilations", {1, 1});
    integer(n, "group", l.groups);
    return n->output(0);
  }

  // OnnxBridge's form of a channel-masked site after convolution `l` (and
  // its BatchNorm `bn`, folded or not): the output channels in runs of one
  // SiteOp, a Conv (+ BatchNormalization) per run, a Relu on each ReLU run,
  // and a Concat of the runs in channel order. The same function; the
  // identity channels pay no ReLU in a framework without PRelu or Split.
  // A site after anything else (a residual add) selects its runs with 1x1
  // convolutions of 0/1 weights, exact in fixed point too.
  std::string split_conv(const Layer& l, const Layer* bn, const Layer& site, const std::string& cur) {
    return split_channels(l, conv_weights(l, o_.fold_bn ? bn : nullptr), bn, site, cur);
  }
  std::string select_channels(const Layer& site, const std::string& cur) {
    Layer select;
    select.name = site.name;
    select.op = Op::Conv;
    select.kernel = 1;
    select.in_ch = select.out_ch = site.out.c;
    const size_t C = static_cast<size_t>(site.out.c);
    ConvWeights c{{site.out.c, site.out.c, 1, 1}, std::vector<float>(C * C, 0.f), {}, false};
    for (size_t i = 0; i < C; ++i) c.w[i * C + i] = 1.f;
    return split_channels(select, c, nullptr, site, cur);
  }
  std::string split_channels(const Layer& l, const ConvWeights& c, const Layer* bn, const Layer& site,
                             const std::string& cur) {
    const std::vector<uint8_t>& ops = site.mask->ops;
    const size_t per = c.w.size() / static_cast<size_t>(l.out_ch);
    std::vector<std::string> parts;
    for (size_t begin = 0, k = 0; begin < ops.size(); ++k) {
      size_t end = begin;
      while (end < ops.size() && ops[end] == ops[begin]) ++end;
      const std::string part = "_" + std::to_string(k);
      const auto slice = [&](const std::vector<float>& v, size_t width) {
        return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(begin * width),
                                  v.begin() + static_cast<std::ptrdiff_t>(end * width));
      };
      const int64_t n = static_cast<int64_t>(end - begin);
      std::vector<int64_t> wshape = c.shape;
      wshape[0] = n;
      std::vector<std::string> in = {cur, initializer(l.name + ".weight" + part, wshape, slice(c.w, per))};
      if (c.bias) in.push_back(initializer(l.name + ".bias" + part, {n}, slice(c.b, 1)));
      std::string t = conv_node(l, in, part);
      if (bn && !o_.fold_bn) {
        std::vector<std::string> bin = {t};
        for (const char* p : {".weight", ".bias", ".running_mean", ".running_var"})
          bin.push_back(initializer(bn->name + p + part, {n}, slice(weight(bn->name + p, {l.out_ch}).values, 1)));
        t = batch_norm_node(bn->name, bin, part);
      }
      if (ops[begin] == static_cast<uint8_t>(arch::SiteOp::Relu)) t = node("Relu", site.name, {t}, part);
      parts.push_back(t);
      begin = end;
    }
    if (bn && o_.fold_bn) ++report.folded_bn;
    ++report.split_sites;
    auto* n = add_node("Concat", site.name, parts);
    integer(n, "axis", 1);
    return n->output(0);
  }

  std::string batch_norm(const Layer& l, const std::string& cur) {
    const std::vector<int64_t> c = {l.out.c};
    std::vector<std::string> in = {cur};
    for (const char* p : {".weight", ".bias", ".running_mean", ".running_var"})
      in.push_back(weight_initializer(l.name + p, c));
    return batch_norm_node(l.name, in, "");
  }
  std::string batch_norm_node(const std::string& layer, const std::vector<std::string>& in, const std::string& suffix) {
    auto* n = add_node("BatchNormalization", layer, in, suffix);
    auto* a = n->add_attribute();
    a->set_name("epsilon");
    a->set_type(pb::AttributeProto::FLOAT);
    a->set_f(kBnEps);
    return n->output(0);
  }

  std::string relu_site(const Layer& l, const std::string& cur) {
    switch (arch::relu_kind(l)) {
      case arch::ReluKind::Identity: return cur;  // removed: costs nothing, is nothing
      case arch::ReluKind::Plain: return node("Relu", l.name, {cur});
      case arch::ReluKind::Masked: break;
    }
    const arch::ReluMask& m = *l.mask;
    const int64_t plane = l.out.h * l.out.w;
    const std::vector<int64_t> dims =
        m.channelwise ? std::vector<int64_t>{l.out.c, 1, 1} : std::vector<int64_t>{l.out.c, l.out.h, l.out.w};
    const size_t n = m.ops.size();
    auto channel = [&](size_t i) { return m.channelwise ? i : i / static_cast<size_t>(plane); };
    const bool poly = arch::has_polynomials(l);
    if (!poly && m.channelwise && o_.masks == MaskForm::OnnxBridge) return select_channels(l, cur);
    if (!poly && o_.masks == MaskForm::PRelu) {  // PRelu: slope 0 a ReLU, 1 an identity
      std::vector<float> slope(n);
      for (size_t i = 0; i < n; ++i) slope[i] = m.ops[i] == static_cast<uint8_t>(arch::SiteOp::Relu) ? 0.f : 1.f;
      ++report.prelu_sites;
      return node("PRelu", l.name, {cur, initializer(l.name + ".slope", dims, slope)});
    }
    // relu(x)*R + x*B [+ (x*x)*A + K]
    const size_t C = static_cast<size_t>(l.out.c);
    const std::vector<float> coef = poly ? weight(l.name + ".poly", {3, l.out.c}).values : std::vector<float>{};
    std::vector<float> R(n, 0.f), B(n, 0.f), A(n, 0.f), K(n, 0.f);
    for (size_t i = 0; i < n; ++i) {
      const auto op = static_cast<arch::SiteOp>(m.ops[i]);
      if (op == arch::SiteOp::Relu) R[i] = 1.f;
      if (op == arch::SiteOp::Identity) B[i] = 1.f;
      if (op == arch::SiteOp::Poly) A[i] = coef[channel(i)], B[i] = coef[C + channel(i)], K[i] = coef[2 * C + channel(i)];
    }
    ++(poly ? report.poly_sites : report.muladd_sites);
    const std::string r = node("Mul", l.name, {node("Relu", l.name, {cur}), initializer(l.name + ".relu_part", dims, R)});
    const std::string xb = node("Mul", l.name, {cur, initializer(l.name + ".linear_part", dims, B)}, "_1");
    const std::string linear = node("Add", l.name, {r, xb});
    if (!poly) return linear;
    const std::string xa =
        node("Mul", l.name, {node("Mul", l.name, {cur, cur}, "_2"), initializer(l.name + ".square_part", dims, A)}, "_3");
    const std::string s = node("Add", l.name, {linear, xa}, "_1");
    return node("Add", l.name, {s, initializer(l.name + ".constant_part", dims, K)}, "_2");
  }

  const arch::Network& net_;
  const std::map<std::string, Tensor>& w_;
  const WriteOptions& o_;
  pb::GraphProto* g_ = nullptr;
};

}  // namespace

WriteReport write_model(const arch::Network& net, const std::map<std::string, Tensor>& weights,
                        const std::string& path, const WriteOptions& o) {
  GraphWriter w(net, weights, o);
  const pb::ModelProto m = w.build();
  try {
    pb::checker::check_model(m);
  } catch (const std::exception& e) {
    throw std::logic_error("internal: the ONNX file for " + path + " fails the ONNX checker: " + e.what());
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error(path + ": the model does not fit one ONNX file (2 GiB)");
  util::write_file_atomic(path, bytes);
  WriteReport r = w.report;
  r.bytes = static_cast<int64_t>(bytes.size());
  return r;
}

#endif

}  // namespace dr::onnx
