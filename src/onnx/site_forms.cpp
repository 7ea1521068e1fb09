// Written site forms folded back into site nodes (site_forms.h).
#include "onnx/site_forms.h"

#ifdef DEEPREDUCE_WITH_ONNX
#include <algorithm>
#include <set>

#include "onnx/proto.h"

namespace dr::onnx {
namespace {

namespace pb = ::onnx;

// A broadcast term larger than this is refused: no site of a network within
// arch's limits needs more, and a hostile file cannot make us allocate more.
constexpr int64_t kMaxTermElements = int64_t(1) << 26;

class SiteFolder {
 public:
  SiteFolder(pb::GraphProto& g, std::string path) : g_(g), path_(std::move(path)) {}

  std::map<std::string, SiteTerms> fold() {
    index();
    for (int i = 0; i < g_.node_size(); ++i)
      if (g_.node(i).op_type() == "Concat") fold_split_conv(i);
    std::vector<std::string> starts;
    for (const auto& [t, users] : consumers_) starts.push_back(t);
    for (const auto& x : starts) fold_muladd(x);
    rebuild();
    return std::move(sites_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw ReadError(path_ + ": " + what); }

  void index() {
    for (const auto& t : g_.initializer()) consts_[t.name()] = &t;
    for (const auto& o : g_.output()) outputs_.insert(o.name());
    for (int i = 0; i < g_.node_size(); ++i) {
      const pb::NodeProto& n = g_.node(i);
      if (n.domain() == kSiteDomain) fail("node '" + n.name() + "' is of deepreduce's internal domain " + kSiteDomain);
      if (n.op_type() == "Constant" && n.output_size() == 1) {
        const pb::AttributeProto* v = find_attribute(n, "value");
        if (v && v->type() == pb::AttributeProto::TENSOR) consts_[n.output(0)] = &v->t();
        continue;
      }
      for (const auto& o : n.output()) producer_[o] = i;
    }
    for (int i = 0; i < g_.node_size(); ++i)
      for (const auto& in : g_.node(i).input())
        if (!in.empty() && !consts_.count(in)) consumers_[in].push_back(i);
  }

  const pb::NodeProto& node(int i) const { return g_.node(i); }
  const pb::TensorProto* constant(const std::string& name) const {
    auto it = consts_.find(name);
    return it == consts_.end() ? nullptr : it->second;
  }
  Tensor values(const pb::TensorProto& t) const { return float_tensor(t, dims(t), "constant", path_); }
  // The node computing `t` when that node is still in the graph and `t` feeds
  // only one node and is not a graph output; else -1.
  int sole_producer(const std::string& t) const {
    auto p = producer_.find(t);
    auto c = consumers_.find(t);
    if (p == producer_.end() || p->second < 0 || removed_.count(p->second) || outputs_.count(t) ||
        read_by_added_.count(t) || c == consumers_.end() || c->second.size() != 1)
      return -1;
    return p->second;
  }
  // The attributes of `n` as one comparable string.
  static std::string attributes(const pb::NodeProto& n) {
    std::vector<std::string> a;
    for (const auto& x : n.attribute()) a.push_back(x.name() + "=" + x.SerializeAsString());
    std::sort(a.begin(), a.end());
    std::string s;
    for (const auto& x : a) s += x + ";";
    return s;
  }
  pb::TensorProto* add_initializer(const std::string& name, const std::vector<int64_t>& d, const std::vector<float>& v) {
    pb::TensorProto* t = g_.add_initializer();
    t->set_name(name);
    t->set_data_type(pb::TensorProto::FLOAT);
    for (int64_t x : d) t->add_dims(x);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    consts_[name] = t;
    return t;
  }
  std::string fresh(const std::string& base) { return base + "/folded_" + std::to_string(fresh_++); }

  // A site node reading `x`, writing `y`, named after `like`'s layer.
  pb::NodeProto site_node(const pb::NodeProto& like, const std::string& x, const std::string& y, SiteTerms terms) {
    pb::NodeProto n;
    n.set_op_type(kSiteOp);
    n.set_domain(kSiteDomain);
    n.set_name("/" + scoped_name(like) + "/" + kSiteOp);
    n.add_input(x);
    n.add_output(y);
    sites_[y] = std::move(terms);
    return n;
  }

  // --- a convolution split into channel runs, Relu on some, Concat ----------

  struct Run {
    int conv = -1, bn = -1, relu = -1;
    int64_t channels = 0;
  };

  // The run ending in Concat input `t`, or conv -1 when it is not one.
  Run run_of(const std::string& t) const {
    Run r;
    int p = sole_producer(t);
    if (p >= 0 && node(p).op_type() == "Relu") r.relu = p, p = sole_producer(node(p).input(0));
    if (p >= 0 && node(p).op_type() == "BatchNormalization" && node(p).input_size() == 5)
      r.bn = p, p = sole_producer(node(p).input(0));
    if (p < 0 || node(p).op_type() != "Conv" || node(p).input_size() < 2) return r;
    const pb::TensorProto* w = constant(node(p).input(1));
    if (!w || w->dims_size() != 4 || w->dims(0) < 1) return r;
    r.conv = p;
    r.channels = w->dims(0);
    return r;
  }

  // The runs of Concat `cat` when it ends a split convolution: one input x,
  // the same attributes, ungrouped, constant weights; else none.
  std::vector<Run> split_runs(const pb::NodeProto& cat) const {
    const pb::AttributeProto* axis = find_attribute(cat, "axis");
    if (!axis || (axis->i() != 1 && axis->i() != -3) || cat.input_size() < 2 || cat.output_size() != 1) return {};
    std::vector<Run> runs;
    for (const auto& t : cat.input()) {
      runs.push_back(run_of(t));
      const Run& r = runs.back();
      const Run& first = runs.front();
      if (r.conv < 0 || node(r.conv).input(0) != node(first.conv).input(0) ||
          attributes(node(r.conv)) != attributes(node(first.conv)) || (r.bn < 0) != (first.bn < 0) ||
          (r.bn >= 0 && attributes(node(r.bn)) != attributes(node(first.bn))))
        return {};
    }
    const pb::AttributeProto* group = find_attribute(node(runs[0].conv), "group");
    if (group && group->i() != 1) return {};  // a grouped convolution's channels are not split this way
    const std::vector<int64_t> wd = dims(*constant(node(runs[0].conv).input(1)));
    for (const Run& r : runs) {
      std::vector<int64_t> d = dims(*constant(node(r.conv).input(1)));
      d[0] = wd[0];
      const pb::NodeProto& c = node(r.conv);
      if (d != wd || (c.input_size() > 2 && !c.input(2).empty() && !constant(c.input(2)))) return {};
      for (int k = 1; r.bn >= 0 && k < 5; ++k)
        if (!constant(node(r.bn).input(k))) return {};
    }
    return runs;
  }

  // The runs as one convolution (and BatchNorm): their weights, biases (0
  // where a run has none) and BatchNorm inputs in channel order, and 1 for
  // the channels of runs with a Relu.
  struct Merged {
    std::vector<int64_t> weight_dims;
    std::vector<float> w, b, relu;
    std::vector<std::vector<float>> bn = std::vector<std::vector<float>>(4);
    bool bias = false;
  };
  Merged merge(const std::vector<Run>& runs) const {
    Merged m;
    m.weight_dims = dims(*constant(node(runs[0].conv).input(1)));
    m.weight_dims[0] = 0;
    const auto append = [](std::vector<float>& to, const Tensor& t) { to.insert(to.end(), t.values.begin(), t.values.end()); };
    for (const Run& r : runs) {
      const pb::NodeProto& c = node(r.conv);
      append(m.w, float_tensor(*constant(c.input(1)), dims(*constant(c.input(1))), "weight", path_));
      const bool bias = c.input_size() > 2 && !c.input(2).empty();
      append(m.b, bias ? float_tensor(*constant(c.input(2)), {r.channels}, "bias", path_)
                       : Tensor{{r.channels}, std::vector<float>(static_cast<size_t>(r.channels), 0.f)});
      m.bias = m.bias || bias;
      for (int k = 0; r.bn >= 0 && k < 4; ++k)
        append(m.bn[size_t(k)], float_tensor(*constant(node(r.bn).input(k + 1)), {r.channels}, "BatchNormalization input", path_));
      m.relu.insert(m.relu.end(), static_cast<size_t>(r.channels), r.relu >= 0 ? 1.f : 0.f);
      m.weight_dims[0] += r.channels;
    }
    return m;
  }

  void fold_split_conv(int concat) {
    const pb::NodeProto& cat = node(concat);
    const std::vector<Run> runs = split_runs(cat);
    if (runs.empty()) return;
    const Merged m = merge(runs);
    const int64_t out = m.weight_dims[0];
    const std::string base = cat.output(0), x = node(runs[0].conv).input(0);
    std::vector<pb::NodeProto> nodes;
    if (runs[0].bn >= 0 || m.bias || !selects_in_order(node(runs[0].conv), m.w, out)) {
      pb::NodeProto conv = node(runs[0].conv);
      conv.clear_input();
      conv.clear_output();
      conv.add_input(x);
      conv.add_input(add_initializer(fresh(base), m.weight_dims, m.w)->name());
      if (m.bias) conv.add_input(add_initializer(fresh(base), {out}, m.b)->name());
      conv.add_output(fresh(base));
      nodes.push_back(conv);
    }  // else the 1x1 selections of a site after an add: no convolution
    if (runs[0].bn >= 0) {
      pb::NodeProto norm = node(runs[0].bn);
      norm.clear_input();
      norm.clear_output();
      norm.add_input(nodes.back().output(0));
      for (const auto& v : m.bn) norm.add_input(add_initializer(fresh(base), {out}, v)->name());
      norm.add_output(fresh(base));
      nodes.push_back(norm);
    }
    nodes.push_back(site_node(cat, nodes.empty() ? x : nodes.back().output(0), base, channel_terms(m.relu)));
    for (const Run& r : runs)
      for (int i : {r.conv, r.bn, r.relu})
        if (i >= 0) removed_.insert(i);
    replace(concat, std::move(nodes));
  }

  // relu(x) on the channels where `relu` is 1, x on the others.
  static SiteTerms channel_terms(const std::vector<float>& relu) {
    const int64_t c = static_cast<int64_t>(relu.size());
    SiteTerms terms;
    terms.relu = {{c, 1, 1}, relu};
    terms.linear = {{c, 1, 1}, relu};
    for (float& v : terms.linear.values) v = 1.f - v;
    return terms;
  }
  // Whether `conv` with weight `w` (out x in x k x k) is the identity: 1x1,
  // stride 1, unpadded, out == in and w the identity matrix (what export
  // writes to select the channel runs of a site after a residual add).
  bool selects_in_order(const pb::NodeProto& conv, const std::vector<float>& w, int64_t out) const {
    if (w.size() != static_cast<size_t>(out * out)) return false;
    for (const char* name : {"strides", "dilations", "pads", "kernel_shape"}) {
      const pb::AttributeProto* a = find_attribute(conv, name);
      if (!a) continue;
      const int64_t want = std::string(name) == "pads" ? 0 : 1;
      for (int64_t v : a->ints())
        if (v != want) return false;
    }
    const pb::AttributeProto* pad = find_attribute(conv, "auto_pad");
    if (pad && pad->s() != "NOTSET" && pad->s() != "VALID") return false;
    for (int64_t i = 0; i < out; ++i)
      for (int64_t j = 0; j < out; ++j)
        if (w[size_t(i * out + j)] != (i == j ? 1.f : 0.f)) return false;
    return true;
  }

  // --- relu(x)*R + x*B + (x*x)*A + K in Relu, Mul and Add --------------------

  static Tensor scalar(float v) { return {{}, {v}}; }

  // a (op) b, broadcast by NumPy's rules; an empty tensor is 0.
  Tensor combine(const Tensor& a, const Tensor& b, bool multiply) const {
    if (a.values.empty() || b.values.empty()) return multiply ? Tensor{} : (a.values.empty() ? b : a);
    const size_t rank = std::max(a.shape.size(), b.shape.size());
    std::vector<int64_t> d(rank), sa(rank, 0), sb(rank, 0);
    int64_t n = 1, stride_a = 1, stride_b = 1;
    for (size_t k = rank; k-- > 0;) {
      const size_t ka = k + a.shape.size() - rank, kb = k + b.shape.size() - rank;
      const int64_t da = k + a.shape.size() >= rank ? a.shape[ka] : 1, db = k + b.shape.size() >= rank ? b.shape[kb] : 1;
      if (da != db && da != 1 && db != 1)
        fail("a site's terms of shapes " + dims_str(a.shape) + " and " + dims_str(b.shape) + " do not broadcast");
      d[k] = std::max(da, db);
      sa[k] = da == 1 ? 0 : stride_a;
      sb[k] = db == 1 ? 0 : stride_b;
      stride_a *= da, stride_b *= db;
      n *= d[k];
      if (n > kMaxTermElements) fail("a site's term broadcasts to more than " + std::to_string(kMaxTermElements) + " elements");
    }
    Tensor out{d, std::vector<float>(static_cast<size_t>(n))};
    for (int64_t i = 0; i < n; ++i) {
      int64_t rest = i, ia = 0, ib = 0;
      for (size_t k = rank; k-- > 0;) {
        const int64_t at = rest % d[k];
        rest /= d[k];
        ia += at * sa[k], ib += at * sb[k];
      }
      const float va = a.values[size_t(ia)], vb = b.values[size_t(ib)];
      out.values[size_t(i)] = multiply ? va * vb : va + vb;
    }
    return out;
  }
  SiteTerms scaled(const SiteTerms& t, const Tensor& c) const {
    return {combine(t.relu, c, true), combine(t.linear, c, true), combine(t.square, c, true), combine(t.constant, c, true)};
  }
  SiteTerms sum(const SiteTerms& a, const SiteTerms& b) const {
    return {combine(a.relu, b.relu, false), combine(a.linear, b.linear, false), combine(a.square, b.square, false),
            combine(a.constant, b.constant, false)};
  }

  // The terms node `n` computes from x and the terms computed so far, or
  // false when it is not a step of the form.
  bool step(const pb::NodeProto& n, const std::string& x, const std::map<std::string, SiteTerms>& terms, SiteTerms* out) const {
    if (n.output_size() != 1) return false;
    const std::string& op = n.op_type();
    if (op == "Relu") {
      if (n.input(0) != x) return false;
      out->relu = scalar(1.f);
      return true;
    }
    if ((op != "Mul" && op != "Add") || n.input_size() != 2) return false;
    const auto a = terms.find(n.input(0)), b = terms.find(n.input(1));
    const pb::TensorProto* ca = constant(n.input(0));
    const pb::TensorProto* cb = constant(n.input(1));
    if (op == "Mul" && n.input(0) == x && n.input(1) == x) {
      out->square = scalar(1.f);
      return true;
    }
    if (a != terms.end() && b != terms.end()) {
      if (op != "Add") return false;
      *out = sum(a->second, b->second);
      return true;
    }
    const auto* t = a != terms.end() ? &a->second : b != terms.end() ? &b->second : nullptr;
    const pb::TensorProto* c = a != terms.end() ? cb : ca;
    if (!t || !c) return false;
    const Tensor v = values(*c);
    if (op == "Mul") {
      *out = scaled(*t, v);
    } else {
      *out = *t;
      out->constant = combine(out->constant, v, false);
    }
    return true;
  }

  void fold_muladd(const std::string& x) {
    const auto live = [&](const std::string& t) {
      std::vector<int> v;
      auto it = consumers_.find(t);
      if (it != consumers_.end())
        for (int i : it->second)
          if (!removed_.count(i)) v.push_back(i);
      return v;
    };
    const std::vector<int> first = live(x);
    if (first.size() < 2 || read_by_added_.count(x)) return;
    for (int i : first) {
      const pb::NodeProto& n = node(i);
      const bool reads_x = std::find(n.input().begin(), n.input().end(), x) != n.input().end();
      if (!reads_x || (n.op_type() != "Relu" && n.op_type() != "Mul")) return;
    }
    std::map<std::string, SiteTerms> terms;
    terms[x].linear = scalar(1.f);
    std::set<int> in_site;
    for (bool grew = true; grew;) {
      grew = false;
      std::vector<std::string> known;
      for (const auto& [t, v] : terms) known.push_back(t);
      for (const auto& t : known)
        for (int i : live(t)) {
          SiteTerms s;
          if (in_site.count(i) || !step(node(i), x, terms, &s)) continue;
          in_site.insert(i);
          terms[node(i).output(0)] = std::move(s);
          grew = true;
        }
    }
    // One tensor leaves the site: y. Every other one stays inside it.
    std::string y;
    for (const auto& [t, v] : terms) {
      const std::vector<int> users = live(t);
      const bool leaves = outputs_.count(t) || std::any_of(users.begin(), users.end(), [&](int i) { return !in_site.count(i); });
      if (!leaves) continue;
      if (t == x || !y.empty()) return;
      y = t;
    }
    if (y.empty()) return;
    int like = producer_.at(y);
    for (int i : in_site)
      if (node(i).op_type() == "Relu") like = i;
    std::vector<pb::NodeProto> nodes{site_node(node(like), x, y, terms[y])};
    removed_.insert(in_site.begin(), in_site.end());
    replace(producer_.at(y), std::move(nodes));
  }

  // --- the rewritten graph ----------------------------------------------------

  // `nodes` take the place of node `last` (removed, with the rest of their
  // form): after every node the form read, before every node that reads it.
  void replace(int last, std::vector<pb::NodeProto> nodes) {
    removed_.insert(last);
    for (const auto& n : nodes) {
      added_[last].push_back(n);
      for (const auto& o : n.output()) producer_[o] = -1;  // not an index of the old graph
      for (const auto& in : n.input()) read_by_added_.insert(in);
    }
  }

  void rebuild() {
    if (added_.empty()) return;
    google::protobuf::RepeatedPtrField<pb::NodeProto> nodes;
    for (int i = 0; i < g_.node_size(); ++i) {
      auto it = added_.find(i);
      if (it != added_.end())
        for (auto& n : it->second) *nodes.Add() = std::move(n);
      if (!removed_.count(i)) *nodes.Add() = g_.node(i);
    }
    g_.mutable_node()->Swap(&nodes);
  }

  pb::GraphProto& g_;
  const std::string path_;
  std::map<std::string, const pb::TensorProto*> consts_;
  std::map<std::string, int> producer_;
  std::map<std::string, std::vector<int>> consumers_;
  std::set<std::string> outputs_;
  std::set<int> removed_;
  std::map<int, std::vector<pb::NodeProto>> added_;  // by the node they replace
  std::set<std::string> read_by_added_;
  std::map<std::string, SiteTerms> sites_;
  int fresh_ = 0;
};

}  // namespace

std::map<std::string, SiteTerms> fold_site_forms(pb::GraphProto& g, const std::string& path) {
  return SiteFolder(g, path).fold();
}

}  // namespace dr::onnx
#endif
