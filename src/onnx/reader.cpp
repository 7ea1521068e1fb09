// ONNX graph -> arch::Network + weights (reader.h). The graph is walked from
// its input: a tensor with one consumer continues the current block, a tensor
// with two opens a residual block whose two branches must be chains that
// meet at one Add. Every node must be on that walk. The site forms export
// writes are folded into single site nodes first (site_forms.h).
#include "onnx/reader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "arch/family.h"
#include "onnx/proto.h"
#include "onnx/site_forms.h"
#include "util/strings.h"

#ifdef DEEPREDUCE_WITH_ONNX
#include <google/protobuf/io/coded_stream.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#endif

namespace dr::onnx {

bool is_onnx_path(const std::string& text) { return arch::is_network_file(text); }

void install_network_reader() {
  arch::set_network_file_reader([](const std::string& path) {
    Model m = read_model(path);
    return arch::NetworkFile{std::move(m.net), "ONNX " + (m.producer.empty() ? std::string() : "from " + m.producer + ", ") +
                                                   "opset " + std::to_string(m.opset)};
  });
}

std::string accepted_ops() {
  return "Conv, BatchNormalization, Relu, PRelu (a 0/1 slope: a pixel-masked ReLU site), MaxPool, GlobalAveragePool, "
         "ReduceMean (over H and W), AveragePool (over the whole image), Flatten, Reshape (to N x features), Gemm, "
         "MatMul, Add (two residual branches, or a constant after MatMul), Identity, Dropout; and the site forms "
         "export writes: relu(x)*R + x*B + (x*x)*A + K in Relu, Mul and Add, and Concat of a convolution split by "
         "output channels";
}

#ifndef DEEPREDUCE_WITH_ONNX

bool available() { return false; }

Model read_model(const std::string& path) {
  throw ReadError(path + ": this deepreduce was built without ONNX support: install Debian's libonnx-dev "
                         "(apt-get install libonnx-dev, which `make deps` does) and rebuild");
}

#else

bool available() { return true; }

namespace {

namespace pb = ::onnx;
using arch::Layer;
using arch::Op;
using arch::Shape;

// The ReLU roles of an imported network (reader.h).
constexpr const char* kRolePlain = "relu";
constexpr const char* kRoleBody = "relu1";
constexpr const char* kRolePost = "relu2";
constexpr const char* kRoleFc = "fc";

class GraphReader {
 public:
  // `sites`: the terms of the site nodes fold_site_forms put in m's graph.
  GraphReader(std::string path, const pb::ModelProto& m, std::map<std::string, SiteTerms> sites)
      : path_(std::move(path)), model_(m), g_(m.graph()), sites_(std::move(sites)) {}

  Model read() {
    Model out;
    out.opset = opset();
    out.producer = model_.producer_name() + (model_.producer_version().empty() ? "" : " " + model_.producer_version());
    index_nodes();
    read_io();
    net_.family = "onnx";
    net_.spec = path_;
    net_.input = shape_;
    arch::validate_input({shape_, 1}, path_ + ": input " + input_ + " " + shape_.str());
    walk();
    finish_stages();
    out.net = std::move(net_);
    out.net.totals();  // throws when a sum does not fit
    out.weights = std::move(weights_);
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw ReadError(path_ + ": " + what); }
  std::string label(const pb::NodeProto& n) const {
    if (n.domain() == kSiteDomain)
      return "site '" + scoped_name(n) + "' (its Relu, Mul and Add nodes, or its Concat of a split Conv)";
    return "node '" + (n.name().empty() ? n.output_size() ? n.output(0) : std::string("?") : n.name()) + "' (" +
           n.op_type() + ")";
  }

  int64_t opset() const {
    for (const auto& o : model_.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") {
        if (o.version() < 7 || o.version() > 17)
          fail("opset " + std::to_string(o.version()) + " is not accepted (7 to 17: export with opset_version=13 "
                                                         "for EzPC's OnnxBridge, at most 17)");
        return o.version();
      }
    fail("imports no opset of the default ONNX domain");
  }

  // --- constants and attributes ----------------------------------------------

  std::string resolve(const std::string& name) const {
    auto it = alias_.find(name);
    return it == alias_.end() ? name : it->second;
  }
  const pb::TensorProto* constant(const std::string& name) const {
    auto it = consts_.find(resolve(name));
    return it == consts_.end() ? nullptr : it->second;
  }
  const pb::TensorProto& need_constant(const pb::NodeProto& n, int i, const char* what) const {
    if (n.input_size() <= i || n.input(i).empty()) fail(label(n) + " has no " + what);
    const pb::TensorProto* t = constant(n.input(i));
    if (!t) fail(label(n) + ": its " + what + " '" + n.input(i) + "' is not an initializer or constant");
    return *t;
  }

  Tensor floats(const pb::TensorProto& t, const std::vector<int64_t>& expect, const std::string& what) const {
    return float_tensor(t, expect, what, path_);
  }

  std::vector<int64_t> int64s(const pb::TensorProto& t, const std::string& what) const {
    if (t.data_type() != pb::TensorProto::INT64) fail(what + " '" + t.name() + "' is not INT64");
    if (t.dims_size() > 1 || (t.dims_size() == 1 && (t.dims(0) < 0 || t.dims(0) > 8)))
      fail(what + " '" + t.name() + "' is " + dims_str(dims(t)) + ", expected a list of at most 8 values");
    const int64_t n = t.dims_size() ? t.dims(0) : 1;
    std::vector<int64_t> v;
    if (t.has_raw_data()) {
      if (static_cast<int64_t>(t.raw_data().size()) != n * 8) fail(what + " '" + t.name() + "' is truncated");
      v.resize(static_cast<size_t>(n));
      std::memcpy(v.data(), t.raw_data().data(), static_cast<size_t>(n) * 8);
    } else {
      if (t.int64_data_size() != n) fail(what + " '" + t.name() + "' is truncated");
      v.assign(t.int64_data().begin(), t.int64_data().end());
    }
    return v;
  }

  const pb::AttributeProto* attr(const pb::NodeProto& n, const char* name) const { return find_attribute(n, name); }
  int64_t attr_int(const pb::NodeProto& n, const char* name, int64_t def) const {
    const auto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != pb::AttributeProto::INT) fail(label(n) + ": attribute " + name + " is not an integer");
    return a->i();
  }
  float attr_float(const pb::NodeProto& n, const char* name, float def) const {
    const auto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != pb::AttributeProto::FLOAT) fail(label(n) + ": attribute " + name + " is not a float");
    return a->f();
  }
  std::vector<int64_t> attr_ints(const pb::NodeProto& n, const char* name, std::vector<int64_t> def) const {
    const auto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != pb::AttributeProto::INTS) fail(label(n) + ": attribute " + name + " is not a list of integers");
    return {a->ints().begin(), a->ints().end()};
  }
  void require_no_auto_pad(const pb::NodeProto& n) const {
    const auto* a = attr(n, "auto_pad");
    if (a && a->s() != "NOTSET" && a->s() != "VALID")
      fail(label(n) + ": auto_pad " + a->s() + " is not accepted (explicit pads, or VALID)");
  }

  // A square window with equal strides and one padding on every side: what
  // arch::Layer holds. Sets l.kernel, l.stride, l.padding.
  void window(const pb::NodeProto& n, Layer& l, int64_t kernel) const {
    const auto strides = attr_ints(n, "strides", {1, 1});
    const auto* ap = attr(n, "auto_pad");
    const auto pads = ap && ap->s() == "VALID" ? std::vector<int64_t>{0, 0, 0, 0} : attr_ints(n, "pads", {0, 0, 0, 0});
    const auto dil = attr_ints(n, "dilations", {1, 1});
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1 || strides[0] > arch::limits::kMaxInputSide)
      fail(label(n) + ": strides " + dims_str(strides) + " (accepted: two equal strides)");
    if (pads.size() != 4 || pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] || pads[0] < 0 ||
        pads[0] > kernel)
      fail(label(n) + ": pads " + dims_str(pads) + " (accepted: the same padding, at most the kernel, on every side)");
    if (dil != std::vector<int64_t>{1, 1}) fail(label(n) + ": dilations " + dims_str(dil) + " (accepted: 1x1)");
    l.kernel = kernel;
    l.stride = strides[0];
    l.padding = pads[0];
  }

  // A tensor the network computes (not a weight, constant or shape).
  bool is_activation(const std::string& name) const {
    return !name.empty() && !constant(name) && !shape_values_.count(resolve(name));
  }
  int activation_inputs(const pb::NodeProto& n) const {
    return static_cast<int>(std::count_if(n.input().begin(), n.input().end(),
                                          [&](const std::string& in) { return is_activation(in); }));
  }

  // --- shape computations ---------------------------------------------------
  // x.view(x.size(0), -1) exports as Shape -> Gather -> Unsqueeze -> Concat ->
  // Reshape: integer nodes on the shapes of activations, evaluated when the
  // walk reaches the Reshape, with the batch size as 0 (Reshape's "copy").

  bool is_shape_node(const pb::NodeProto& n) const {
    static const std::set<std::string> ops = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Cast"};
    if (n.op_type() == "Shape") return true;
    if (!ops.count(n.op_type())) return false;
    bool shape_input = false;
    for (const auto& in : n.input()) {
      if (in.empty() || constant(in)) continue;
      if (!shape_values_.count(resolve(in))) return false;
      shape_input = true;
    }
    return shape_input;
  }

  // The int64 values of a constant or of a shape computation.
  std::vector<int64_t> int_values(const std::string& name, const std::string& what, int depth = 0) const {
    if (const pb::TensorProto* t = constant(name)) return int64s(*t, what);
    auto it = shape_values_.find(resolve(name));
    if (it == shape_values_.end() || depth > 64) fail(what + " '" + name + "' is not a constant or a shape");
    const pb::NodeProto& n = *it->second;
    const std::string& op = n.op_type();
    auto in = [&](int i) { return int_values(n.input(i), label(n) + " input", depth + 1); };
    if (op == "Shape") {
      if (attr(n, "start") || attr(n, "end")) fail(label(n) + ": start and end are not accepted");
      auto s = shapes_.find(resolve(n.input(0)));
      if (s == shapes_.end()) fail(label(n) + " reads '" + n.input(0) + "', whose shape is not known there");
      return {0, s->second.c, s->second.h, s->second.w};
    }
    if (op == "Cast") return in(0);
    if (op == "Concat") {
      std::vector<int64_t> v;
      for (int i = 0; i < n.input_size(); ++i)
        for (int64_t x : in(i)) v.push_back(x);
      return v;
    }
    if (op == "Unsqueeze" || op == "Squeeze") return in(0);  // of a scalar or a list: the same values
    if (op == "Gather") {
      const auto data = in(0), idx = in(1);
      if (attr_int(n, "axis", 0) != 0) fail(label(n) + ": axis is not 0");
      std::vector<int64_t> v;
      for (int64_t i : idx) {
        if (i < 0) i += static_cast<int64_t>(data.size());
        if (i < 0 || i >= static_cast<int64_t>(data.size())) fail(label(n) + ": index out of range");
        v.push_back(data[size_t(i)]);
      }
      return v;
    }
    fail(label(n) + " is not accepted in a shape computation");
  }

  // --- the graph's nodes, inputs and output ----------------------------------

  void index_nodes() {
    if (g_.node_size() > limits::kMaxNodes)
      fail(std::to_string(g_.node_size()) + " nodes, more than " + std::to_string(limits::kMaxNodes));
    for (const auto& t : g_.initializer()) consts_[t.name()] = &t;
    for (const auto& n : g_.node()) {
      const bool site = n.domain() == kSiteDomain && n.output_size() == 1 && sites_.count(n.output(0));
      if (!n.domain().empty() && n.domain() != "ai.onnx" && !site)
        fail(label(n) + " is of the domain '" + n.domain() + "' (accepted: the default ONNX domain)");
      if (n.output_size() < 1) fail(label(n) + " has no output");
      if (n.op_type() == "Constant") {
        const auto* v = attr(n, "value");
        if (!v || v->type() != pb::AttributeProto::TENSOR) fail(label(n) + ": only a tensor 'value' is accepted");
        consts_[n.output(0)] = &v->t();
      } else if (n.op_type() == "Identity" || n.op_type() == "Dropout") {
        if (n.input_size() < 1) fail(label(n) + " has no input");
        if (n.op_type() == "Dropout" && n.input_size() > 2 && !n.input(2).empty()) {
          const auto* mode = constant(n.input(2));
          if (!mode || mode->data_type() != pb::TensorProto::BOOL ||
              (mode->has_raw_data() ? mode->raw_data() != std::string(1, '\0') : mode->int32_data_size() != 1 ||
                                                                                     mode->int32_data(0) != 0))
            fail(label(n) + ": only inference Dropout (training_mode absent or false) is accepted");
        }
        const std::string in = resolve(n.input(0));
        if (consts_.count(in))
          consts_[n.output(0)] = consts_[in];
        else
          alias_[n.output(0)] = in;
      } else if (is_shape_node(n)) {
        for (const auto& o : n.output()) shape_values_[o] = &n;
      } else {
        nodes_.push_back(&n);
      }
    }
    for (size_t i = 0; i < nodes_.size(); ++i)
      for (const auto& in : nodes_[i]->input())
        if (is_activation(in)) consumers_[resolve(in)].push_back(i);
  }

  void read_io() {
    std::vector<const pb::ValueInfoProto*> inputs;
    for (const auto& v : g_.input())
      if (!consts_.count(v.name())) inputs.push_back(&v);
    if (inputs.size() != 1) fail(std::to_string(inputs.size()) + " graph inputs besides the weights (accepted: one image tensor)");
    if (g_.output_size() != 1) fail(std::to_string(g_.output_size()) + " graph outputs (accepted: one, the logits)");
    const auto& in = *inputs[0];
    input_ = in.name();
    output_ = resolve(g_.output(0).name());
    if (!in.type().has_tensor_type() || in.type().tensor_type().elem_type() != pb::TensorProto::FLOAT)
      fail("input '" + input_ + "' is not a float tensor");
    const auto& sh = in.type().tensor_type().shape();
    if (sh.dim_size() != 4) fail("input '" + input_ + "' has " + std::to_string(sh.dim_size()) + " dimensions (accepted: N x C x H x W)");
    int64_t chw[3];
    for (int i = 1; i < 4; ++i) {
      if (!sh.dim(i).has_dim_value() || sh.dim(i).dim_value() < 1)
        fail("input '" + input_ + "' has no fixed size in dimension " + std::to_string(i) +
             " (C, H and W must be fixed: export with a fixed image size)");
      chw[i - 1] = sh.dim(i).dim_value();
    }
    shape_ = {chw[0], chw[1], chw[2]};
    cur_ = input_;
    shapes_[input_] = shape_;
  }

  // --- the walk --------------------------------------------------------------

  bool is_branch_add(const pb::NodeProto& n) const {
    return n.op_type() == "Add" && n.input_size() == 2 && is_activation(n.input(0)) && is_activation(n.input(1));
  }
  const std::vector<size_t>& uses(const std::string& t) const {
    static const std::vector<size_t> none;
    auto it = consumers_.find(t);
    return it == consumers_.end() ? none : it->second;
  }
  std::string out_of(const pb::NodeProto& n) const { return resolve(n.output(0)); }

  void walk() {
    while (true) {
      const auto& u = uses(cur_);
      if (cur_ == output_) {
        if (!u.empty()) fail("the output '" + output_ + "' also feeds " + label(*nodes_[u[0]]));
        break;
      }
      if (u.empty()) fail("tensor '" + cur_ + "' feeds nothing and is not the graph's output");
      if (u.size() == 1 && !is_branch_add(*nodes_[u[0]])) {
        plain_step(u[0]);
      } else {
        residual_block(u);
      }
    }
    for (size_t i = 0; i < nodes_.size(); ++i)
      if (!visited_.count(i))
        fail(label(*nodes_[i]) + " is not on the path from the input to the output (accepted: a chain of plain and "
                                 "residual blocks)");
    const Layer* last = nullptr;
    for (const Layer* l : net_.layers()) last = l;
    if (!last || last->op != Op::Linear || !(shape_ == Shape{shape_.c, 1, 1}))
      fail("the output '" + output_ + "' is not the N x classes output of a fully connected layer (Gemm or MatMul)");
    net_.classes = shape_.c;
    arch::validate_input({net_.input, net_.classes}, path_ + ": " + std::to_string(net_.classes) + " classes");
  }

  void plain_step(size_t i) {
    const pb::NodeProto& n = *nodes_[i];
    visited_.insert(i);
    arch::Block* b = net_.blocks.empty() ? nullptr : &net_.blocks.back();
    if (b && b->residual && post_open_ && is_relu_site(n)) {
      list_ = &b->post;
      relu_site(n, kRolePost, b->stage);
      shapes_[out_of(n)] = shape_;
      post_open_ = false;
    } else {
      post_open_ = false;
      convert(n, nullptr);
    }
    cur_ = out_of(n);
  }

  // Follows the chain from `first` to the Add where it ends (its index in `join`).
  std::vector<size_t> branch(size_t first, size_t* join) const {
    std::vector<size_t> chain;
    size_t i = first;
    while (!is_branch_add(*nodes_[i])) {
      if (activation_inputs(*nodes_[i]) > 1)
        fail(label(*nodes_[i]) + " joins two branches (accepted: residual branches joined by an Add)");
      chain.push_back(i);
      const std::string t = out_of(*nodes_[i]);
      if (t == output_) fail("a branch from tensor '" + cur_ + "' reaches the output without an Add that joins it");
      const auto& u = uses(t);
      if (u.size() != 1)
        fail("inside a residual branch, tensor '" + t + "' feeds " + std::to_string(u.size()) +
             " nodes (accepted: branches that are chains; DenseNet or Inception blocks are not)");
      i = u[0];
    }
    *join = i;
    return chain;
  }

  void residual_block(const std::vector<size_t>& u) {
    if (u.size() != 2)
      fail("tensor '" + cur_ + "' feeds " + std::to_string(u.size()) +
           " nodes (accepted: one, or two branches joined by one Add, or a site relu(x)*R + x*B + (x*x)*A + K in "
           "Relu, Mul and Add)");
    size_t join = 0, join_b = 0;
    std::vector<size_t> a = branch(u[0], &join);
    std::vector<size_t> b = branch(u[1], &join_b);
    const pb::NodeProto& add = *nodes_[join];
    if (join != join_b)
      fail("the branches from tensor '" + cur_ + "' end at " + label(add) + " and " + label(*nodes_[join_b]) +
           " (accepted: two branches joined by one Add)");
    if (a.empty() && b.empty()) fail(label(add) + " adds tensor '" + cur_ + "' to itself");
    if (b.size() > a.size()) std::swap(a, b);  // the body is the longer branch
    post_open_ = false;
    const Shape in = shape_;
    close_block();
    net_.blocks.push_back(arch::Block{"", "", {}, true, {}, {}});
    in_residual_ = true;
    list_ = &net_.blocks.back().body;
    for (size_t i : a) convert(*nodes_[i], kRoleBody), visited_.insert(i);
    const Shape body_out = shape_;
    shape_ = in;
    list_ = &net_.blocks.back().shortcut;
    for (size_t i : b) convert(*nodes_[i], kRoleBody), visited_.insert(i);
    in_residual_ = false;
    if (!(shape_ == body_out))
      fail(label(add) + " adds " + body_out.str() + " to " + shape_.str() + " (the two branches must agree)");
    visited_.insert(join);
    auto& blk = net_.blocks.back();
    blk.stage = resolution_stage(shape_);
    for (auto* list : {&blk.body, &blk.shortcut})
      for (Layer& l : *list) l.stage = blk.stage;
    blk.name = block_name(blk);
    post_open_ = true;
    cur_ = out_of(add);
    shapes_[cur_] = shape_;
  }

  // --- stages and blocks -----------------------------------------------------

  // The stage of a layer at `s` outside the head: a new one at every change of H x W.
  std::string resolution_stage(const Shape& s) {
    if (stage_index_ == 0 || s.h != res_h_ || s.w != res_w_) ++stage_index_, res_h_ = s.h, res_w_ = s.w;
    return "S" + std::to_string(stage_index_);
  }

  std::string block_name(const arch::Block& b) const {
    std::vector<std::string> common;
    bool first = true;
    for (const auto* list : {&b.body, &b.shortcut, &b.post})
      for (const Layer& l : *list) {
        auto segs = util::split(l.name, '.');
        segs.pop_back();
        if (first) common = segs, first = false;
        size_t k = 0;
        while (k < common.size() && k < segs.size() && common[k] == segs[k]) ++k;
        common.resize(k);
      }
    return common.empty() ? "block" + std::to_string(net_.blocks.size() - 1) : util::join(common, ".");
  }

  // The list of a plain layer at stage `stage`: the current plain block when
  // it is of that stage, else a new one.
  std::vector<Layer>* plain_list(const std::string& stage) {
    if (net_.blocks.empty() || net_.blocks.back().residual || net_.blocks.back().stage != stage) {
      close_block();
      net_.blocks.push_back(arch::Block{"", stage, {}, false, {}, {}});
    }
    return &net_.blocks.back().body;
  }

  // Names the last block (from its layers) once it is complete.
  void close_block() {
    if (!net_.blocks.empty() && net_.blocks.back().name.empty()) net_.blocks.back().name = block_name(net_.blocks.back());
  }

  // ReLU-less resolutions join the next stage with ReLUs (or the last one);
  // net.stages lists the stages with ReLUs, S1..Sk.
  void finish_stages() {
    close_block();
    std::vector<std::string> order;
    std::set<std::string> with_relus;
    for (const Layer* l : net_.layers()) {
      if (l->stage.empty() || l->stage[0] != 'S') continue;
      if (order.empty() || order.back() != l->stage) order.push_back(l->stage);
      if (l->op == Op::ReLU) with_relus.insert(l->stage);
    }
    std::map<std::string, std::string> rename;
    std::vector<std::string> pending;
    int k = 0;
    for (const auto& s : order) {
      pending.push_back(s);
      if (with_relus.count(s)) {
        const std::string name = "S" + std::to_string(++k);
        for (const auto& p : pending) rename[p] = name;
        pending.clear();
        net_.stages.push_back(name);
      }
    }
    for (const auto& p : pending) rename[p] = k ? "S" + std::to_string(k) : "S1";
    if (k == 0 && !order.empty()) net_.stages.push_back("S1");
    for (auto& b : net_.blocks)
      if (rename.count(b.stage)) b.stage = rename[b.stage];
    for (Layer* l : net_.mutable_layers())
      if (rename.count(l->stage)) l->stage = rename[l->stage];
  }

  // --- layers ----------------------------------------------------------------

  std::string unique_name(const pb::NodeProto& n) {
    std::string base = scoped_name(n);
    if (base.empty()) base = util::lower(n.op_type()) + std::to_string(names_.size());
    auto taken = [&](const std::string& s) {
      if (names_.count(s) || containers_.count(s)) return true;
      for (size_t dot = s.find('.'); dot != std::string::npos; dot = s.find('.', dot + 1))
        if (names_.count(s.substr(0, dot))) return true;
      return false;
    };
    std::string name = base;
    for (int k = 2; taken(name); ++k) name = base + "_" + std::to_string(k);
    names_.insert(name);
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
      containers_.insert(name.substr(0, dot));
    return name;
  }

  Layer make(const pb::NodeProto& n, Op op) {
    Layer l;
    l.name = unique_name(n);
    l.op = op;
    l.in = l.out = shape_;
    return l;
  }

  // Appends `l` to its block (a plain layer: by its stage), after checking
  // its counts and the layer limit.
  void add(Layer l) {
    if (++layers_ > arch::limits::kMaxLayers)
      fail("more than " + std::to_string(arch::limits::kMaxLayers) + " layers (the limit per network)");
    try {
      l.check_counts();
    } catch (const arch::SpecError& e) {
      fail("layer '" + l.name + "': " + e.what());
    }
    if (l.stage.empty() && !in_residual_) {
      const bool head_op = l.op == Op::GlobalAvgPool || l.op == Op::Flatten || l.op == Op::Linear;
      in_head_ = in_head_ || head_op;
      if (l.op == Op::Linear) seen_linear_ = true;
      l.stage = !in_head_ ? resolution_stage(l.out) : (l.op == Op::ReLU && seen_linear_ ? "FC" : "head");
      if (l.op == Op::ReLU && seen_linear_) l.role = kRoleFc;
      list_ = plain_list(in_head_ ? "head" : l.stage);  // FC ReLUs stay in the head's block
    }
    shape_ = l.out;
    list_->push_back(std::move(l));
  }

  int64_t spatial(const pb::NodeProto& n, int64_t size, const Layer& l) const {
    const int64_t span = size + 2 * l.padding - l.kernel;
    if (span < 0) fail(label(n) + ": a " + std::to_string(l.kernel) + "x" + std::to_string(l.kernel) +
                       " window does not fit the " + shape_.str() + " input");
    return span / l.stride + 1;
  }

  // Appends the layer(s) of node `n`, and records the shape of its output.
  void convert(const pb::NodeProto& n, const char* relu_role) {
    convert_op(n, relu_role);
    shapes_[out_of(n)] = shape_;
  }

  void convert_op(const pb::NodeProto& n, const char* relu_role) {
    const std::string& op = n.op_type();
    const int activations = activation_inputs(n);
    if (activations != 1)
      fail(label(n) + " reads " + std::to_string(activations) + " computed tensors (accepted: one, besides the Add "
                      "that joins two residual branches)");
    if (op == "Conv") return conv(n);
    if (op == "BatchNormalization") return batch_norm(n);
    if (is_relu_site(n)) return relu_site(n, relu_role ? relu_role : kRolePlain, "");
    if (op == "MaxPool") return max_pool(n);
    if (op == "GlobalAveragePool" || op == "ReduceMean" || op == "AveragePool") return global_pool(n);
    if (op == "Flatten" || op == "Reshape") return flatten(n);
    if (op == "Gemm" || op == "MatMul") return linear(n);
    if (op == "Add") return bias_add(n);
    fail(label(n) + " is not accepted (accepted ops: " + accepted_ops() + ")");
  }
  void conv(const pb::NodeProto& n) {
    const auto& w = need_constant(n, 1, "weight");
    const auto wd = dims(w);
    if (wd.size() != 4 || wd[2] != wd[3] || wd[2] < 1)
      fail(label(n) + ": weight '" + w.name() + "' is " + dims_str(wd) + " (accepted: O x C/groups x k x k)");
    const int64_t groups = attr_int(n, "group", 1);
    if (groups < 1 || shape_.c % groups != 0 || wd[1] * groups != shape_.c || wd[0] % groups != 0 || wd[0] < 1 ||
        wd[0] > arch::limits::kMaxChannels)
      fail(label(n) + ": weight " + dims_str(wd) + " with " + std::to_string(groups) + " groups does not fit its " +
           shape_.str() + " input");
    const auto ks = attr_ints(n, "kernel_shape", {wd[2], wd[3]});
    if (ks != std::vector<int64_t>{wd[2], wd[3]}) fail(label(n) + ": kernel_shape " + dims_str(ks) + " is not the weight's");
    require_no_auto_pad(n);
    Layer l = make(n, Op::Conv);
    window(n, l, wd[2]);
    l.in_ch = shape_.c;
    l.out_ch = wd[0];
    l.groups = groups;
    l.bias = n.input_size() > 2 && !n.input(2).empty();
    l.out = {wd[0], spatial(n, shape_.h, l), spatial(n, shape_.w, l)};
    weights_[l.name + ".weight"] = floats(w, wd, "weight");
    if (l.bias) weights_[l.name + ".bias"] = floats(need_constant(n, 2, "bias"), {wd[0]}, "bias");
    add(std::move(l));
  }

  void batch_norm(const pb::NodeProto& n) {
    if (attr_int(n, "training_mode", 0) != 0) fail(label(n) + ": training_mode is not accepted (export in eval mode)");
    Layer l = make(n, Op::BatchNorm);
    const std::vector<int64_t> c{shape_.c};
    weights_[l.name + ".weight"] = floats(need_constant(n, 1, "scale"), c, "scale");
    weights_[l.name + ".bias"] = floats(need_constant(n, 2, "bias"), c, "bias");
    weights_[l.name + ".running_mean"] = floats(need_constant(n, 3, "mean"), c, "mean");
    Tensor var = floats(need_constant(n, 4, "variance"), c, "variance");
    // deepreduce's BatchNorm divides by sqrt(var + 1e-5): another epsilon
    // moves into the variance, which gives the same function.
    const float eps = attr_float(n, "epsilon", 1e-5f);
    for (float& v : var.values) {
      v = v + eps - 1e-5f;
      if (!(v >= 0)) fail(label(n) + ": variance + epsilon below 1e-5 (deepreduce's epsilon)");
    }
    weights_[l.name + ".running_var"] = std::move(var);
    add(std::move(l));
  }

  bool is_relu_site(const pb::NodeProto& n) const {
    return n.op_type() == "Relu" || n.op_type() == "PRelu" || n.domain() == kSiteDomain;
  }
  void relu_site(const pb::NodeProto& n, const char* role, const std::string& stage) {
    if (n.op_type() == "PRelu") return site(n, prelu_terms(n), role, stage);
    if (n.domain() == kSiteDomain) return site(n, sites_.at(n.output(0)), role, stage);
    Layer l = make(n, Op::ReLU);
    l.role = role;
    l.stage = stage;
    add(std::move(l));
  }

  // PRelu with a slope s of 0s and 1s, relu(x)*(1-s) + x*s: a pixel-masked
  // ReLU site (0: ReLU, 1: identity), element-wise ([C,H,W]) or channel-wise
  // ([C,1,1]); what onnx::write_model writes for SNL's masks by default.
  SiteTerms prelu_terms(const pb::NodeProto& n) const {
    const auto& t = need_constant(n, 1, "slope");
    const auto d = dims(t);
    if (d != std::vector<int64_t>{shape_.c, 1, 1} && d != std::vector<int64_t>{shape_.c, shape_.h, shape_.w})
      fail(label(n) + ": slope '" + t.name() + "' is " + dims_str(d) + " (accepted: " + std::to_string(shape_.c) +
           "x" + std::to_string(shape_.h) + "x" + std::to_string(shape_.w) + " or " + std::to_string(shape_.c) +
           "x1x1 of 0s and 1s, a pixel-masked ReLU site)");
    SiteTerms s;
    s.linear = floats(t, d, "slope");
    s.relu = s.linear;
    for (float& v : s.relu.values) {
      if (v != 0.f && v != 1.f)
        fail(label(n) + ": slope '" + t.name() + "' holds " + std::to_string(v) +
             " (accepted: 0 for a ReLU element, 1 for an identity; a leaky ReLU is not a ReLU site)");
      v = 1.f - v;
    }
    return s;
  }

  // A term of a site of shape shape_ as C' x H' x W' (each 1 or the site's),
  // or fails naming the node.
  std::vector<int64_t> term_dims(const pb::NodeProto& n, const Tensor& t) const {
    std::vector<int64_t> d = t.shape;
    while (d.size() > 3 && d.front() == 1) d.erase(d.begin());
    while (d.size() < 3) d.insert(d.begin(), 1);
    if (d.size() > 3 || (d[0] != 1 && d[0] != shape_.c) || (d[1] != 1 && d[1] != shape_.h) || (d[2] != 1 && d[2] != shape_.w))
      fail(label(n) + ": a site term of shape " + dims_str(t.shape) + " on a " + shape_.str() + " input");
    return d;
  }

  // A site computing relu(x)*R + x*B + (x*x)*A + K per element (site_forms.h):
  // each element a ReLU (R 1, the rest 0), an identity (B 1, the rest 0) or,
  // with R 0, the polynomial A*x^2 + B*x + K of its channel (arch::SiteOp).
  void site(const pb::NodeProto& n, const SiteTerms& t, const char* role, const std::string& stage) {
    const Tensor* terms[4] = {&t.relu, &t.linear, &t.square, &t.constant};
    std::vector<int64_t> d[4];
    bool channelwise = true;
    for (int k = 0; k < 4; ++k) {
      if (terms[k]->values.empty()) continue;
      d[k] = term_dims(n, *terms[k]);
      channelwise = channelwise && d[k][1] == 1 && d[k][2] == 1;
    }
    const int64_t C = shape_.c, H = channelwise ? 1 : shape_.h, W = channelwise ? 1 : shape_.w;
    auto value = [&](int k, int64_t c, int64_t h, int64_t w) {
      if (terms[k]->values.empty()) return 0.f;
      const auto& e = d[k];
      return terms[k]->values[size_t(((e[0] > 1 ? c : 0) * e[1] + (e[1] > 1 ? h : 0)) * e[2] + (e[2] > 1 ? w : 0))];
    };
    const auto num = [](float v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
      return std::string(buf);
    };
    auto mask = std::make_shared<arch::ReluMask>();
    mask->channelwise = channelwise;
    mask->ops.resize(size_t(C * H * W));
    std::vector<float> poly(size_t(3 * C), 0.f);
    std::vector<bool> has_poly(size_t(C), false);
    for (int64_t c = 0, i = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w, ++i) {
          const float r = value(0, c, h, w), b = value(1, c, h, w), a = value(2, c, h, w), k = value(3, c, h, w);
          arch::SiteOp op = arch::SiteOp::Poly;
          if (r == 1.f && b == 0.f && a == 0.f && k == 0.f) op = arch::SiteOp::Relu;
          else if (r == 0.f && b == 1.f && a == 0.f && k == 0.f) op = arch::SiteOp::Identity;
          else if (r != 0.f)
            fail(label(n) + ": element " + std::to_string(i) + " computes " + num(r) + "*relu(x) + " + num(b) + "*x + " +
                 num(a) + "*x^2 + " + num(k) +
                 " (accepted per element: relu(x), x, or a*x^2 + b*x + c, one polynomial per channel)");
          mask->ops[size_t(i)] = static_cast<uint8_t>(op);
          if (op != arch::SiteOp::Poly) continue;
          const float abc[3] = {a, b, k};
          for (int j = 0; j < 3; ++j) {
            float& slot = poly[size_t(j * C + c)];
            if (has_poly[size_t(c)] && slot != abc[j])
              fail(label(n) + ": channel " + std::to_string(c) + " holds two polynomials (accepted: one per channel)");
            slot = abc[j];
          }
          has_poly[size_t(c)] = true;
        }
    Layer l = make(n, Op::ReLU);
    l.role = role;
    l.stage = stage;
    const arch::MaskCounts counts = arch::mask_counts(l, *mask);
    mask->live = counts.relus;
    mask->polys = counts.polys;
    if (counts.relus == 0 && counts.polys == 0)
      l.live = false;  // identities only: a removed ReLU
    else if (counts.relus < l.out.numel())
      l.mask = mask;
    if (counts.polys > 0) weights_[l.name + ".poly"] = Tensor{{3, C}, std::move(poly)};
    add(std::move(l));
  }

  void max_pool(const pb::NodeProto& n) {
    if (attr_int(n, "ceil_mode", 0) != 0) fail(label(n) + ": ceil_mode 1 is not accepted");
    if (attr_int(n, "storage_order", 0) != 0) fail(label(n) + ": storage_order 1 is not accepted");
    require_no_auto_pad(n);
    const auto ks = attr_ints(n, "kernel_shape", {});
    if (ks.size() != 2 || ks[0] != ks[1] || ks[0] < 1)
      fail(label(n) + ": kernel_shape " + dims_str(ks) + " (accepted: k x k)");
    Layer l = make(n, Op::MaxPool);
    window(n, l, ks[0]);
    if (2 * l.padding > l.kernel) fail(label(n) + ": pads larger than half the kernel");
    l.out = {shape_.c, spatial(n, shape_.h, l), spatial(n, shape_.w, l)};
    add(std::move(l));
  }

  void global_pool(const pb::NodeProto& n) {
    bool flat = false;
    if (n.op_type() == "ReduceMean") {
      auto axes = attr_ints(n, "axes", {});
      for (auto& a : axes) a = a < 0 ? a + 4 : a;
      if (axes != std::vector<int64_t>{2, 3}) fail(label(n) + ": axes " + dims_str(axes) + " (accepted: H and W, 2 and 3)");
      flat = attr_int(n, "keepdims", 1) == 0;
    } else if (n.op_type() == "AveragePool") {
      const auto ks = attr_ints(n, "kernel_shape", {});
      const auto pads = attr_ints(n, "pads", {0, 0, 0, 0});
      if (ks != std::vector<int64_t>{shape_.h, shape_.w} || pads != std::vector<int64_t>{0, 0, 0, 0} ||
          attr_int(n, "ceil_mode", 0) != 0)
        fail(label(n) + ": a " + dims_str(ks) + " window on a " + shape_.str() +
             " input (accepted: average pooling over the whole image, unpadded)");
    }
    Layer l = make(n, Op::GlobalAvgPool);
    l.out = {shape_.c, 1, 1};
    const std::string name = l.name;
    add(std::move(l));
    if (flat) {
      Layer f;
      f.name = name + "_flatten";
      names_.insert(f.name);
      f.op = Op::Flatten;
      f.in = f.out = shape_;
      add(std::move(f));
    }
  }

  void flatten(const pb::NodeProto& n) {
    const int64_t numel = shape_.numel();
    if (n.op_type() == "Flatten") {
      if (attr_int(n, "axis", 1) != 1) fail(label(n) + ": axis " + std::to_string(attr_int(n, "axis", 1)) + " (accepted: 1)");
    } else {
      if (n.input_size() < 2) fail(label(n) + " has no shape");
      const auto to = int_values(n.input(1), label(n) + " shape");
      const bool ok = to.size() == 2 && (to[0] == 1 || to[0] == -1 || to[0] == 0) && (to[1] == numel || to[1] == -1) &&
                      !(to[0] == -1 && to[1] == -1);
      if (!ok) fail(label(n) + ": reshape to " + dims_str(to) + " of a " + shape_.str() + " tensor (accepted: N x " +
                    std::to_string(numel) + ")");
    }
    Layer l = make(n, Op::Flatten);
    l.out = {numel, 1, 1};
    add(std::move(l));
  }

  void linear(const pb::NodeProto& n) {
    if (!(shape_ == Shape{shape_.c, 1, 1}))
      fail(label(n) + " reads a " + shape_.str() + " tensor (accepted: N x features, after Flatten)");
    const auto& b = need_constant(n, 1, "weight");
    const auto bd = dims(b);
    const bool gemm = n.op_type() == "Gemm";
    const bool trans_b = gemm && attr_int(n, "transB", 0) != 0;
    if (gemm && attr_int(n, "transA", 0) != 0) fail(label(n) + ": transA is not accepted");
    if (bd.size() != 2 || bd[trans_b ? 1 : 0] != shape_.c || bd[trans_b ? 0 : 1] < 1 ||
        bd[trans_b ? 0 : 1] > arch::limits::kMaxChannels)
      fail(label(n) + ": weight '" + b.name() + "' is " + dims_str(bd) + " for " + std::to_string(shape_.c) +
           " input features");
    const int64_t out = bd[trans_b ? 0 : 1];
    Layer l = make(n, Op::Linear);
    l.in_ch = shape_.c;
    l.out_ch = out;
    l.out = {out, 1, 1};
    Tensor src = floats(b, bd, "weight");
    const float alpha = gemm ? attr_float(n, "alpha", 1.f) : 1.f;
    Tensor w;
    w.shape = {out, shape_.c};
    w.values.resize(src.values.size());
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < shape_.c; ++i)
        w.values[size_t(o * shape_.c + i)] = alpha * src.values[size_t(trans_b ? o * shape_.c + i : i * out + o)];
    weights_[l.name + ".weight"] = std::move(w);
    if (gemm && n.input_size() > 2 && !n.input(2).empty()) {
      l.bias = true;
      weights_[l.name + ".bias"] = bias_values(n, need_constant(n, 2, "bias"), out, attr_float(n, "beta", 1.f));
    }
    add(std::move(l));
  }

  Tensor bias_values(const pb::NodeProto& n, const pb::TensorProto& t, int64_t out, float scale) const {
    const auto d = dims(t);
    if (d != std::vector<int64_t>{out} && d != std::vector<int64_t>{1, out})
      fail(label(n) + ": bias '" + t.name() + "' is " + dims_str(d) + " (accepted: " + std::to_string(out) + ")");
    Tensor b = floats(t, d, "bias");
    b.shape = {out};
    for (float& v : b.values) v *= scale;
    return b;
  }

  // Add of a constant: the bias of the MatMul before it.
  void bias_add(const pb::NodeProto& n) {
    Layer* last = list_ && !list_->empty() ? &list_->back() : nullptr;
    if (!last || last->op != Op::Linear || last->bias || !(last->out == shape_))
      fail(label(n) + ": an Add of a constant is accepted only as the bias of the MatMul before it");
    const pb::TensorProto* t = constant(n.input(0)) ? constant(n.input(0)) : constant(n.input(1));
    weights_[last->name + ".bias"] = bias_values(n, *t, last->out_ch, 1.f);
    last->bias = true;
  }

  const std::string path_;
  const pb::ModelProto& model_;
  const pb::GraphProto& g_;
  const std::map<std::string, SiteTerms> sites_;  // by the output of their node
  std::map<std::string, const pb::TensorProto*> consts_;
  std::map<std::string, std::string> alias_;
  std::vector<const pb::NodeProto*> nodes_;
  std::map<std::string, std::vector<size_t>> consumers_;
  std::map<std::string, const pb::NodeProto*> shape_values_;  // outputs of shape computations
  std::map<std::string, Shape> shapes_;                       // of the activations walked so far
  std::set<size_t> visited_;
  std::string input_, output_, cur_;
  Shape shape_;
  arch::Network net_;
  std::map<std::string, Tensor> weights_;
  std::vector<Layer>* list_ = nullptr;
  std::set<std::string> names_, containers_;
  int64_t layers_ = 0;
  int stage_index_ = 0;
  int64_t res_h_ = 0, res_w_ = 0;
  bool in_head_ = false, seen_linear_ = false, post_open_ = false, in_residual_ = false;
};

}  // namespace

Model read_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw ReadError(path + ": cannot open the file");
  const std::streamoff size = f.tellg();
  if (size <= 0) throw ReadError(path + ": empty file (expected an ONNX model)");
  if (size > limits::kMaxFileBytes)
    throw ReadError(path + ": " + std::to_string(size) + " bytes, more than the 2 GiB an ONNX file can hold");
  std::string bytes(static_cast<size_t>(size), '\0');
  f.seekg(0);
  if (!f.read(bytes.data(), size)) throw ReadError(path + ": could not read the file");
  pb::ModelProto m;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(size));
  in.SetTotalBytesLimit(static_cast<int>(limits::kMaxFileBytes));
  if (!m.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    throw ReadError(path + ": not an ONNX model (it does not parse as an ONNX ModelProto: truncated, damaged or "
                           "another format)");
  if (!m.has_graph()) throw ReadError(path + ": not an ONNX model (no graph)");
  try {
    pb::checker::check_model(m);
  } catch (const std::exception& e) {
    std::string why = util::trim(e.what());
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw ReadError(path + ": fails the ONNX checker: " + why);
  }
  std::map<std::string, SiteTerms> sites = fold_site_forms(*m.mutable_graph(), path);
  return GraphReader(path, m, std::move(sites)).read();
}

#endif

}  // namespace dr::onnx
