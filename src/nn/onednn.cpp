// The oneDNN inference program (see onednn.h). Compiled to a stub when
// DEEPREDUCE_WITH_DNNL is not defined (no libdnnl-dev headers).
#include "nn/onednn.h"

#include "arch/relu_site.h"

#ifdef DEEPREDUCE_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#endif

namespace dr::nn::onednn {

#ifndef DEEPREDUCE_WITH_DNNL

bool available() { return false; }
std::unique_ptr<Program> compile(const arch::Network&, bool) { return nullptr; }

#else

bool available() { return true; }

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

// Mask: a masked ReLU site, dst = max(dst, floor) in place, with floor 0 on
// kept elements and -inf on masked-out ones (nn/masked_relu.h).
enum class Kind { Conv, Relu, Mask, MaxPool, AvgPool, Add };

// One operation on values (per-image shapes; a value is one activation).
struct Op {
  Kind kind = Kind::Conv;
  const arch::Layer* layer = nullptr;
  int src = -1, dst = -1;  // Relu, Mask: src == dst (in place); Add: dst += src (in place)
  int sum = -1;            // Conv: dst = conv(src) + value `sum`, in sum's buffer
  bool relu = false;       // Conv: ReLU post-op (after the sum)
};

struct Graph {
  std::vector<Op> ops;
  std::vector<arch::Shape> values;
  int input = 0, output = 0, blocks = 0;
  int new_value(const arch::Shape& s) {
    values.push_back(s);
    return static_cast<int>(values.size()) - 1;
  }
};

// Emits the steps of one part of a block; false on a layer we do not cover.
bool emit(const std::vector<arch::Layer>& steps, int& cur, Graph& g, std::vector<Op>& ops) {
  for (size_t i = 0; i < steps.size(); ++i) {
    const arch::Layer& l = steps[i];
    switch (l.op) {
      case arch::Op::Conv: {
        Op o;
        o.kind = Kind::Conv;
        o.layer = &l;
        o.src = cur;
        const bool bn = i + 1 < steps.size() && steps[i + 1].op == arch::Op::BatchNorm;
        o.dst = g.new_value(bn ? steps[i + 1].out : l.out);
        if (bn) ++i;  // folded into the conv's weights
        ops.push_back(o);
        cur = o.dst;
        break;
      }
      case arch::Op::ReLU: {
        const arch::ReluKind kind = arch::relu_kind(l);
        if (kind == arch::ReluKind::Identity) break;  // removed, or masked out everywhere: nothing at all
        if (arch::has_polynomials(l)) return false;  // polynomial elements: the LibTorch path from here on
        if (kind == arch::ReluKind::Masked) {
          Op o;
          o.kind = Kind::Mask;
          o.layer = &l;
          o.src = o.dst = cur;
          ops.push_back(o);
        } else if (!ops.empty() && ops.back().kind == Kind::Conv && ops.back().dst == cur && !ops.back().relu) {
          ops.back().relu = true;
        } else {
          Op o;
          o.kind = Kind::Relu;
          o.layer = &l;
          o.src = o.dst = cur;
          ops.push_back(o);
        }
        break;
      }
      case arch::Op::MaxPool:
      case arch::Op::GlobalAvgPool: {
        Op o;
        o.kind = l.op == arch::Op::MaxPool ? Kind::MaxPool : Kind::AvgPool;
        o.layer = &l;
        o.src = cur;
        o.dst = g.new_value(l.out);
        ops.push_back(o);
        cur = o.dst;
        break;
      }
      default:  // BatchNorm without a conv before it, Flatten, Linear
        return false;
    }
  }
  return true;
}

Graph build_graph(const arch::Network& net) {
  Graph g;
  g.input = g.new_value(net.input);
  int cur = g.input;
  for (const auto& b : net.blocks) {
    std::vector<Op> ops;
    const size_t nvalues = g.values.size();
    int x = cur;
    bool ok = true;
    if (b.residual) {
      int s = x;
      ok = b.shortcut.empty() || emit(b.shortcut, s, g, ops);
      int y = x;
      ok = ok && emit(b.body, y, g, ops) && y != x;
      if (ok) {
        if (!ops.empty() && ops.back().kind == Kind::Conv && ops.back().dst == y && !ops.back().relu &&
            s != g.input) {
          ops.back().sum = s;
        } else {
          Op a;
          a.kind = Kind::Add;
          a.src = s;
          a.dst = y;
          ops.push_back(a);
        }
        x = y;
      }
    } else {
      ok = emit(b.body, x, g, ops);
    }
    ok = ok && emit(b.post, x, g, ops);
    if (!ok) {
      g.values.resize(nvalues);
      break;
    }
    g.ops.insert(g.ops.end(), ops.begin(), ops.end());
    cur = x;
    ++g.blocks;
  }
  g.output = cur;
  return g;
}

memory::dims nchw(int64_t n, const arch::Shape& s) { return {n, s.c, s.h, s.w}; }

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

class ProgramImpl final : public Program {
 public:
  ProgramImpl(const arch::Network& desc, bool winograd)
      : desc_(desc), graph_(build_graph(desc_)), winograd_(winograd), eng_(dnnl::engine::kind::cpu, 0),
        stream_(eng_) {
    for (const Op& o : graph_.ops)
      if (o.kind == Kind::Mask) floors_[o.layer->name] = floor_of(*o.layer);
    // oneDNN's blocked activation layout on this CPU: 16 channels with AVX-512, else 8.
    const auto isa = dnnl::get_effective_cpu_isa();
    const bool avx512 = isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
                        isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
    block_ = avx512 ? 16 : 8;
    block_tag_ = avx512 ? Tag::nChw16c : Tag::nChw8c;
  }

  int covered_blocks() const override { return graph_.blocks; }
  arch::Shape output_shape() const override { return graph_.values[graph_.output]; }

  void set_weights(const std::map<std::string, ConvWeights>& w) override {
    for (const auto& op : graph_.ops) {
      if (op.kind != Kind::Conv) continue;
      const arch::Layer& l = *op.layer;
      auto it = w.find(l.name);
      if (it == w.end() || !it->second.weight)
        throw std::invalid_argument("oneDNN program: no weights for convolution " + l.name);
      auto& dst = weights_[l.name];
      const size_t nw = static_cast<size_t>(l.out_ch * (l.in_ch / l.groups) * l.kernel * l.kernel);
      dst.first.assign(it->second.weight, it->second.weight + nw);
      if (it->second.bias)
        dst.second.assign(it->second.bias, it->second.bias + l.out_ch);
      else
        dst.second.assign(static_cast<size_t>(l.out_ch), 0.f);
    }
    ++weights_version_;
  }

  void run(const float* in, int64_t n, float* out) override {
    if (weights_version_ == 0) throw std::logic_error("oneDNN program: run() before set_weights()");
    Instance& inst = instance(n);
    if (inst.weights_version != weights_version_) load_weights(inst);
    inst.user_in.set_data_handle(const_cast<float*>(in));
    inst.user_out.set_data_handle(out);
    for (auto& e : inst.execs) e.prim.execute(stream_, e.args);
    stream_.wait();
  }

  int winograd_convs(int64_t n) override { return instance(n).winograd; }

 private:
  struct Exec {
    dnnl::primitive prim;
    std::unordered_map<int, memory> args;
  };
  struct ConvMem {
    memory user_w, w, b;
  };
  struct Instance {
    std::vector<Exec> execs;
    memory user_in, user_out, scratch;
    std::vector<std::unique_ptr<char, AlignedFree>> buffers;
    std::map<std::string, ConvMem> convs;
    uint64_t weights_version = 0;
    int winograd = 0;
  };

  // A pool of raw buffers handed out to values while they are live.
  struct Pool {
    std::vector<std::unique_ptr<char, AlignedFree>>* owned;
    std::vector<std::pair<size_t, bool>> slots;  // size, free
    int take(size_t bytes) {
      int best = -1;
      for (size_t i = 0; i < slots.size(); ++i)
        if (slots[i].second && slots[i].first >= bytes && (best < 0 || slots[i].first < slots[best].first))
          best = static_cast<int>(i);
      if (best >= 0) {
        slots[best].second = false;
        return best;
      }
      const size_t size = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, size);
      if (!p) throw std::bad_alloc();
      owned->emplace_back(static_cast<char*>(p));
      slots.emplace_back(size, false);
      return static_cast<int>(slots.size()) - 1;
    }
    void give(int i) {
      if (i >= 0) slots[i].second = true;
    }
    void* ptr(int i) const { return (*owned)[i].get(); }
  };

  Instance& instance(int64_t n) {
    auto it = instances_.find(n);
    if (it != instances_.end()) return *it->second;
    if (instances_.size() >= 4) instances_.clear();  // batch sizes rarely vary more
    auto inst = std::make_unique<Instance>();
    instantiate(*inst, n);
    return *instances_.emplace(n, std::move(inst)).first->second;
  }

  void instantiate(Instance& inst, int64_t n) { Compiler(*this, inst, n).compile(); }

  // Builds the primitives of one batch size. Values take buffers from a pool
  // while they are live and give them back after their last reader; one
  // scratchpad serves every primitive (they run one at a time).
  class Compiler {
   public:
    Compiler(ProgramImpl& p, Instance& inst, int64_t n)
        : p_(p), g_(p.graph_), inst_(inst), n_(n), pool_{&inst.buffers, {}}, val_(g_.values.size()),
          buf_(g_.values.size(), -1), last_(g_.values.size(), -1) {}

    void compile() {
      const auto& ops = g_.ops;
      // Last op reading each value (the output lives to the end).
      for (int k = 0; k < static_cast<int>(ops.size()); ++k)
        for (int v : {ops[k].src, ops[k].sum, ops[k].kind == Kind::Add ? ops[k].dst : -1})
          if (v >= 0) last_[v] = std::max(last_[v], k);
      last_[g_.output] = static_cast<int>(ops.size());
      const memory::desc in_md(nchw(n_, g_.values[g_.input]), Dt::f32, Tag::nchw);
      inst_.user_in = memory(in_md, p_.eng_, nullptr);
      val_[g_.input] = fresh(in_md, &buf_[g_.input]);  // never write the caller's input
      reorder(inst_.user_in, val_[g_.input]);
      for (int k = 0; k < static_cast<int>(ops.size()); ++k) {
        std::vector<int> temps;
        switch (ops[k].kind) {
          case Kind::Conv: conv(ops[k], temps); break;
          case Kind::Relu: relu(ops[k]); break;
          case Kind::Mask: mask(ops[k]); break;
          case Kind::MaxPool:
          case Kind::AvgPool: pooling(ops[k]); break;
          case Kind::Add: add(ops[k], temps); break;
        }
        for (int t : temps) pool_.give(t);
        release_dead(k);
      }
      finish();
    }

   private:
    void reorder(const memory& from, const memory& to) {
      inst_.execs.push_back({dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}});
    }
    memory fresh(const memory::desc& md, int* slot) {
      *slot = pool_.take(md.get_size());
      return memory(md, p_.eng_, pool_.ptr(*slot));
    }
    // A value in the layout `md`: itself, or a reordered copy (its temporary
    // slot goes to *tmp, to be released after the op).
    memory as(int v, const memory::desc& md, int* tmp) {
      if (val_[v].get_desc() == md) return val_[v];
      memory m = fresh(md, tmp);
      reorder(val_[v], m);
      return m;
    }
    template <class PD>
    void push(const PD& pd, dnnl::primitive prim, std::unordered_map<int, memory> args) {
      scratch_ = std::max(scratch_, pd.scratchpad_desc().get_size());
      args[DNNL_ARG_SCRATCHPAD] = memory();
      inst_.execs.push_back({std::move(prim), std::move(args)});
    }
    static dnnl::primitive_attr user_scratchpad(const dnnl::post_ops& po = dnnl::post_ops()) {
      dnnl::primitive_attr attr;
      attr.set_post_ops(po);
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      return attr;
    }

    // The convolution's primitive: Winograd where it applies, else direct in
    // the blocked layout Winograd uses too (no reorders between neighbours;
    // oneDNN would pick NHWC there), else whatever oneDNN picks.
    dnnl::convolution_forward::primitive_desc conv_desc(const Op& o, const memory::dims& wd, bool& wino) {
      const arch::Layer& l = *o.layer;
      const arch::Shape in_s = g_.values[o.src], out_s = g_.values[o.dst];
      const memory::desc src_md(nchw(n_, in_s), Dt::f32, Tag::any), w_md(wd, Dt::f32, Tag::any),
          b_md({l.out_ch}, Dt::f32, Tag::x), dst_md(nchw(n_, out_s), Dt::f32, Tag::any);
      dnnl::post_ops po;
      if (o.sum >= 0) po.append_sum(1.f);
      if (o.relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      const dnnl::primitive_attr attr = user_scratchpad(po);
      const memory::dims strides{l.stride, l.stride}, pad{l.padding, l.padding};
      auto make = [&](dnnl::algorithm alg, const memory::desc& src, const memory::desc& dst) {
        return dnnl::convolution_forward::primitive_desc(
            dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src, w_md, b_md, dst, strides,
                                            pad, pad),
            attr, p_.eng_);
      };
      wino = false;
      if (p_.winograd_ && l.kernel == 3 && l.stride == 1 && l.groups == 1 && out_s.h >= 4 && out_s.w >= 4) {
        try {
          auto pd = make(dnnl::algorithm::convolution_winograd, src_md, dst_md);
          wino = true;
          return pd;
        } catch (const dnnl::error&) {  // no Winograd for this CPU or shape
        }
      }
      if (l.groups == 1 && l.in_ch % p_.block_ == 0 && l.out_ch % p_.block_ == 0) {
        try {
          auto pd = make(dnnl::algorithm::convolution_direct, memory::desc(nchw(n_, in_s), Dt::f32, p_.block_tag_),
                         memory::desc(nchw(n_, out_s), Dt::f32, p_.block_tag_));
          if (std::string(pd.impl_info_str()).rfind("ref", 0) != 0) return pd;
        } catch (const dnnl::error&) {
        }
      }
      return make(dnnl::algorithm::convolution_direct, src_md, dst_md);
    }

    void conv(const Op& o, std::vector<int>& temps) {
      const arch::Layer& l = *o.layer;
      const int64_t g = l.groups;
      const memory::dims wd = g > 1 ? memory::dims{g, l.out_ch / g, l.in_ch / g, l.kernel, l.kernel}
                                    : memory::dims{l.out_ch, l.in_ch, l.kernel, l.kernel};
      bool wino = false;
      const auto pd = conv_desc(o, wd, wino);
      inst_.winograd += wino;
      int t = -1;
      memory src = as(o.src, pd.src_desc(), &t);
      temps.push_back(t);
      memory dst;
      if (o.sum >= 0 && val_[o.sum].get_desc() == pd.dst_desc() &&
          val_[o.sum].get_data_handle() != src.get_data_handle()) {
        // conv + residual, written into the residual's buffer (unless that is
        // also the conv's input: a one-conv body on an identity skip).
        dst = val_[o.sum];
        buf_[o.dst] = buf_[o.sum];
        buf_[o.sum] = -1;  // ownership moves to the result
      } else {
        dst = fresh(pd.dst_desc(), &buf_[o.dst]);
        if (o.sum >= 0) reorder(val_[o.sum], dst);
      }
      ConvMem cm;
      cm.user_w = memory(memory::desc(wd, Dt::f32, g > 1 ? Tag::goihw : Tag::oihw), p_.eng_, nullptr);
      cm.w = memory(pd.weights_desc(), p_.eng_);
      cm.b = memory(pd.bias_desc(), p_.eng_);
      push(pd, dnnl::convolution_forward(pd),
           {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, cm.w}, {DNNL_ARG_BIAS, cm.b}, {DNNL_ARG_DST, dst}});
      inst_.convs[l.name] = cm;
      val_[o.dst] = dst;
    }

    void relu(const Op& o) {
      dnnl::eltwise_forward::primitive_desc pd(
          dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_relu,
                                      val_[o.src].get_desc(), 0.f, 0.f),
          user_scratchpad(), p_.eng_);
      push(pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, val_[o.src]}, {DNNL_ARG_DST, val_[o.src]}});
    }

    // The floor is laid out like the first image of the value it bounds:
    // oneDNN 2.6 has a jit binary kernel for that broadcast, but not for a
    // per-channel operand on a blocked layout (hence channel-wise floors
    // expanded to C x H x W too).
    void mask(const Op& o) {
      const arch::Layer& l = *o.layer;
      const memory::desc& d = val_[o.src].get_desc();
      const memory::dims fd{1, l.out.c, l.out.h, l.out.w};
      const memory::desc floor_md = d.submemory_desc(fd, memory::dims{0, 0, 0, 0});
      memory floor(floor_md, p_.eng_);
      std::memset(floor.get_data_handle(), 0, floor_md.get_size());  // blocked padding stays 0
      std::vector<float>& user = p_.floors_.at(l.name);
      memory user_floor(memory::desc(fd, Dt::f32, Tag::abcd), p_.eng_, user.data());
      dnnl::reorder(user_floor, floor).execute(p_.stream_, user_floor, floor);
      p_.stream_.wait();
      dnnl::binary::primitive_desc pd(dnnl::binary::desc(dnnl::algorithm::binary_max, d, floor_md, d),
                                      user_scratchpad(), p_.eng_);
      push(pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, val_[o.src]}, {DNNL_ARG_SRC_1, floor}, {DNNL_ARG_DST, val_[o.src]}});
    }

    void pooling(const Op& o) {
      const arch::Layer& l = *o.layer;
      const arch::Shape in_s = g_.values[o.src], out_s = g_.values[o.dst];
      const bool avg = o.kind == Kind::AvgPool;
      const memory::dims kernel = avg ? memory::dims{in_s.h, in_s.w} : memory::dims{l.kernel, l.kernel};
      const memory::dims strides = avg ? memory::dims{1, 1} : memory::dims{l.stride, l.stride};
      // Max pooling's padding is never the maximum (oneDNN pads it with -inf), as PyTorch's.
      const memory::dims pad = avg ? memory::dims{0, 0} : memory::dims{l.padding, l.padding};
      dnnl::pooling_forward::primitive_desc pd(
          dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference,
                                      avg ? dnnl::algorithm::pooling_avg_exclude_padding : dnnl::algorithm::pooling_max,
                                      val_[o.src].get_desc(), memory::desc(nchw(n_, out_s), Dt::f32, Tag::any),
                                      strides, kernel, pad, pad),
          user_scratchpad(), p_.eng_);
      memory dst = fresh(pd.dst_desc(), &buf_[o.dst]);
      push(pd, dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, val_[o.src]}, {DNNL_ARG_DST, dst}});
      val_[o.dst] = dst;
    }

    void add(const Op& o, std::vector<int>& temps) {
      const memory::desc& d = val_[o.dst].get_desc();
      int t = -1;
      memory addend = as(o.src, d, &t);
      temps.push_back(t);
      dnnl::binary::primitive_desc pd(dnnl::binary::desc(dnnl::algorithm::binary_add, d, d, d), user_scratchpad(),
                                      p_.eng_);
      push(pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, val_[o.dst]}, {DNNL_ARG_SRC_1, addend}, {DNNL_ARG_DST, val_[o.dst]}});
    }

    void release_dead(int k) {
      for (size_t v = 0; v < buf_.size(); ++v)
        if (last_[v] == k && buf_[v] >= 0) {
          pool_.give(buf_[v]);
          buf_[v] = -1;
        }
    }

    void finish() {
      const memory::desc out_md(nchw(n_, g_.values[g_.output]), Dt::f32, Tag::nchw);
      inst_.user_out = memory(out_md, p_.eng_, nullptr);
      reorder(val_[g_.output], inst_.user_out);
      inst_.scratch =
          memory(memory::desc({static_cast<int64_t>(std::max<size_t>(scratch_, 1))}, Dt::u8, Tag::x), p_.eng_);
      for (auto& e : inst_.execs) {
        auto it = e.args.find(DNNL_ARG_SCRATCHPAD);
        if (it != e.args.end()) it->second = inst_.scratch;
      }
    }

    ProgramImpl& p_;
    const Graph& g_;
    Instance& inst_;
    int64_t n_;
    Pool pool_;
    std::vector<memory> val_;
    std::vector<int> buf_, last_;
    size_t scratch_ = 0;
  };

  void load_weights(Instance& inst) {
    for (auto& [name, cm] : inst.convs) {
      auto& w = weights_.at(name);
      cm.user_w.set_data_handle(w.first.data());
      dnnl::reorder(cm.user_w, cm.w).execute(stream_, cm.user_w, cm.w);
      // Bias: plain x layout, possibly padded to the block size.
      std::memset(cm.b.get_data_handle(), 0, cm.b.get_desc().get_size());
      std::memcpy(cm.b.get_data_handle(), w.second.data(), w.second.size() * sizeof(float));
    }
    stream_.wait();
    inst.weights_version = weights_version_;
  }

  // The floor of a masked site for one image, [C, H, W] in NCHW order: 0 on
  // kept elements, -inf on masked-out ones.
  static std::vector<float> floor_of(const arch::Layer& l) {
    std::vector<float> f(static_cast<size_t>(l.out.numel()));
    for (size_t i = 0; i < f.size(); ++i)
      f[i] = l.mask->keeps(static_cast<int64_t>(i), l.out) ? 0.f : -std::numeric_limits<float>::infinity();
    return f;
  }

  arch::Network desc_;  // a copy: the graph points into its layers
  Graph graph_;
  bool winograd_;
  int64_t block_ = 16;
  Tag block_tag_ = Tag::nChw16c;
  dnnl::engine eng_;
  dnnl::stream stream_;
  std::map<std::string, std::pair<std::vector<float>, std::vector<float>>> weights_;
  std::map<std::string, std::vector<float>> floors_;  // of the masked sites, by layer name
  uint64_t weights_version_ = 0;
  std::map<int64_t, std::unique_ptr<Instance>> instances_;
};

}  // namespace

std::unique_ptr<Program> compile(const arch::Network& desc, bool winograd) {
  auto p = std::make_unique<ProgramImpl>(desc, winograd);
  if (p->covered_blocks() == 0) return nullptr;
  return p;
}

#endif

}  // namespace dr::nn::onednn
