#include "nn/net.h"

#include "arch/spec.h"
#include "nn/onednn.h"
#include "arch/relu_site.h"
#include "util/strings.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace dr::nn {

namespace {
// An empty module that only holds children: one per dotted prefix of a name.
struct ContainerImpl : torch::nn::Module {};

// y = sum of x over the ranks. Its gradient is the sum over the ranks of the
// gradients of y: every rank's loss depends on every rank's x through y.
struct AllReduceSumFn : torch::autograd::Function<AllReduceSumFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const NetImpl::AllReduceSum* f) {
    ctx->saved_data["f"] = reinterpret_cast<int64_t>(f);
    torch::Tensor y = x.clone(torch::MemoryFormat::Contiguous);
    (*f)(y);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    const auto* f = reinterpret_cast<const NetImpl::AllReduceSum*>(ctx->saved_data["f"].toInt());
    torch::Tensor gx = g[0].clone(torch::MemoryFormat::Contiguous);
    (*f)(gx);
    return {gx, torch::Tensor()};
  }
};
}  // namespace

// BatchNorm over the global batch: two passes (mean, then the mean squared
// deviation) like the single-process kernel, each one all-reduce of C + 1 or C
// values. Written with differentiable ops so autograd gives the exact gradient.
torch::Tensor NetImpl::synced_batch_norm(torch::nn::BatchNorm2d& bn, const torch::Tensor& x) {
  const int64_t C = x.size(1);
  const std::vector<int64_t> dims = x.dim() == 4 ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{0};
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = C;
  const double local_count = static_cast<double>(C ? x.numel() / C : 0);
  torch::Tensor s = torch::cat({x.sum(dims), torch::full({1}, local_count, x.options())});
  s = AllReduceSumFn::apply(s, &bn_sync_);
  const double n = s[C].item<double>();
  if (n < 1) throw std::runtime_error("BatchNorm: the global batch is empty");
  torch::Tensor mean = s.narrow(0, 0, C) / n;
  torch::Tensor xc = x - mean.view(shape);
  torch::Tensor var = AllReduceSumFn::apply((xc * xc).sum(dims), &bn_sync_) / n;
  const auto& o = bn->options;
  torch::Tensor scale = torch::rsqrt(var + o.eps());
  if (o.affine()) scale = scale * bn->weight;
  torch::Tensor y = xc * scale.view(shape);
  if (o.affine()) y = y + bn->bias.view(shape);
  if (o.track_running_stats()) {
    torch::NoGradGuard ng;
    bn->num_batches_tracked += 1;
    const double m = o.momentum() ? *o.momentum() : 1.0 / bn->num_batches_tracked.item<double>();
    bn->running_mean.mul_(1 - m).add_(mean.detach(), m);
    bn->running_var.mul_(1 - m).add_(var.detach() * (n / std::max(1.0, n - 1)), m);
  }
  return y;
}

bool tune_malloc() {
  static const bool tuned = [] {
    const char* v = std::getenv("DEEPREDUCE_MALLOC");
    if (v && std::string(v) == "default") return false;
#if defined(__GLIBC__)
    return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#else
    return false;
#endif
  }();
  return tuned;
}

ExecOptions default_exec_options() {
  ExecOptions o;
  const char* v = std::getenv("DEEPREDUCE_EXEC");
  if (!v) return o;
  for (const std::string& item : util::split(v, ',')) {
    if (item == "nocl") o.channels_last = false;
    else if (item == "nofuse") o.fuse_inference = false;
    else if (item == "nomkldnn") o.mkldnn_inference = false;
    else if (item == "nochunk") o.inference_chunk_bytes = 0;
    else if (item == "noprogram") o.onednn_program = false;
    else if (item == "nowinograd") o.winograd = false;
    else if (item == "plain") o = ExecOptions{false, false, false, false, false, 0};
    else if (!item.empty())
      throw std::invalid_argument("DEEPREDUCE_EXEC: unknown item '" + item +
                                  "' (accepted, comma-separated: plain, nocl, nofuse, nomkldnn, noprogram, nowinograd, nochunk)");
  }
  return o;
}

NetImpl::NetImpl(arch::Network desc) : desc_(std::move(desc)), exec_(default_exec_options()) {
  tune_malloc();
  for (const auto& block : desc_.blocks) {
    BlockSteps bs;
    bs.residual = block.residual;
    for (const auto& l : block.body) bs.body.push_back(make_step(l));
    for (const auto& l : block.shortcut) bs.shortcut.push_back(make_step(l));
    for (const auto& l : block.post) bs.post.push_back(make_step(l));
    blocks_.push_back(std::move(bs));
  }
  apply_memory_format();
}

void NetImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (on) fused_ok_ = false;
}

void NetImpl::set_exec_options(const ExecOptions& o) {
  if (o.winograd != exec_.winograd) program_tried_ = false, program_.reset();
  exec_ = o;
  apply_memory_format();
  fused_ok_ = false;
  fused_key_.clear();
}

void NetImpl::apply_memory_format() {
  torch::NoGradGuard ng;
  const auto fmt = exec_.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto& b : blocks_)
    for (auto* steps : {&b.body, &b.shortcut, &b.post})
      for (auto& s : *steps)
        if (s.conv && s.conv->weight.dim() == 4 && s.conv->weight.device().is_cpu() &&
            !s.conv->weight.is_contiguous(fmt))
          s.conv->weight.set_data(s.conv->weight.data().contiguous(fmt));
}

NetImpl::Step NetImpl::make_step(const arch::Layer& l) {
  // Find or create the container for every prefix of the dotted name.
  torch::nn::Module* parent = this;
  std::string prefix, name = l.name;
  for (size_t dot; (dot = name.find('.')) != std::string::npos; name = name.substr(dot + 1)) {
    prefix += (prefix.empty() ? "" : ".") + name.substr(0, dot);
    auto& c = containers_[prefix];
    if (!c) c = parent->register_module(name.substr(0, dot), std::make_shared<ContainerImpl>());
    parent = c.get();
  }
  Step s;
  s.layer = &l;
  using namespace torch::nn;
  switch (l.op) {
    case arch::Op::Conv:
      s.conv = parent->register_module(
          name, Conv2d(Conv2dOptions(l.in_ch, l.out_ch, l.kernel)
                           .stride(l.stride)
                           .padding(l.padding)
                           .groups(l.groups)
                           .bias(l.bias)));
      break;
    case arch::Op::BatchNorm:
      s.bn = parent->register_module(name, BatchNorm2d(l.out.c));
      break;
    case arch::Op::Linear:
      s.fc = parent->register_module(name, Linear(LinearOptions(l.in_ch, l.out_ch).bias(l.bias)));
      break;
    case arch::Op::ReLU:
      switch (arch::relu_kind(l)) {
        case arch::ReluKind::Plain: s.relu = parent->register_module(name, ReLU(ReLUOptions().inplace(true))); break;
        case arch::ReluKind::Masked:
          if (arch::has_polynomials(l))
            s.poly = parent->register_module(name, PolySite(l));
          else
            s.masked = parent->register_module(name, MaskedReLU(l));
          break;
        case arch::ReluKind::Identity: break;  // removed, or masked out everywhere: no work
      }
      break;
    default:  // pooling and flatten hold no state
      break;
  }
  return s;
}

// oneDNN 2.6 (Debian's, under LibTorch 1.13) corrupts the heap in the
// backward pass of a strided 1x1 convolution on channels-last input whose
// input channels are not a multiple of 16, from about 48x48 pixels (its
// reduce-to-unit-stride path: e.g. resnet18:alpha=0.125 on TinyImageNet's
// 64x64 images; plain PyTorch 1.13 crashes the same way, docs/performance.md).
// Such a convolution without padding is the unit-stride one on every
// stride-th pixel: subsampling first gives the same values and gradients and
// never takes that path.
torch::Tensor conv2d(const arch::Layer& l, const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  const std::vector<int64_t> unit{1, 1};
  const bool subsample = l.kernel == 1 && l.stride > 1 && l.padding == 0 && l.in_ch % 16 != 0 &&
                         x.device().is_cpu() && x.dim() == 4;
  if (!subsample)
    return torch::conv2d(x, weight, bias, {l.stride, l.stride}, {l.padding, l.padding}, unit, l.groups);
  const torch::Tensor sub = x.slice(2, 0, c10::nullopt, l.stride).slice(3, 0, c10::nullopt, l.stride);
  return torch::conv2d(sub, weight, bias, unit, std::vector<int64_t>{0, 0}, unit, l.groups);
}

torch::Tensor NetImpl::run(std::vector<Step>& steps, torch::Tensor x) {
  for (auto& s : steps) {
    switch (s.layer->op) {
      case arch::Op::Conv: x = conv2d(*s.layer, x, s.conv->weight, s.conv->bias); break;
      case arch::Op::BatchNorm:
        x = bn_sync_ && is_training() ? synced_batch_norm(s.bn, x) : s.bn->forward(x);
        break;
      case arch::Op::Linear: x = s.fc->forward(x); break;
      case arch::Op::ReLU:
        if (s.relu && site_activation_)
          x = site_activation_(*s.layer, x);
        else if (s.relu)
          x = s.relu->forward(x);
        else if (s.masked)
          x = s.masked->forward(x);
        else if (s.poly)
          x = s.poly->forward(x);
        else
          break;  // removed by the spec or masked out everywhere: identity, no work
        if (relu_observer_) relu_observer_(s.layer->name, x);
        break;
      case arch::Op::MaxPool: x = torch::max_pool2d(x, s.layer->kernel, s.layer->stride, s.layer->padding); break;
      case arch::Op::GlobalAvgPool: x = torch::adaptive_avg_pool2d(x, {1, 1}); break;
      case arch::Op::Flatten: x = x.flatten(1); break;
    }
  }
  return x;
}

namespace {
// The block output body(x) + skip, in place where the body made a new tensor
// (autograd checks that nothing it saved is overwritten): not when the body
// ends in an activation whose backward reads its output (a ReLU site, as an
// imported network may have before its add) while gradients are recorded.
template <class Steps>
torch::Tensor add_skip(const Steps& body_steps, torch::Tensor body, const torch::Tensor& skip, const torch::Tensor& in) {
  const bool ends_in_site = !body_steps.empty() && body_steps.back().layer->op == arch::Op::ReLU;
  if (body.is_same(skip) || body.is_same(in) || (ends_in_site && body.requires_grad())) return body + skip;
  return body.add_(skip);
}
}  // namespace

torch::Tensor NetImpl::forward(torch::Tensor x) {
  const bool cpu4 = x.dim() == 4 && x.device().is_cpu();
  if (exec_.fuse_inference && !is_training() && !torch::GradMode::is_enabled() && !site_activation_) {
    const bool mk = exec_.mkldnn_inference && cpu4 && x.scalar_type() == torch::kFloat && !relu_observer_ &&
                    at::hasMKLDNN();
    // The program is compiled for the description's input shape.
    const bool described = x.size(1) == desc_.input.c && x.size(2) == desc_.input.h && x.size(3) == desc_.input.w;
    bool use_prog = mk && described && exec_.onednn_program && ensure_program() && prepare_fused(false);
    if (use_prog && program_key_ != fused_key_) {
      // New weights: hand the folded convolutions to the program.
      std::map<std::string, onednn::ConvWeights> w;
      std::vector<torch::Tensor> keep;
      for (auto& b : blocks_)
        for (auto* steps : {&b.body, &b.shortcut, &b.post})
          for (auto& st : *steps)
            if (st.conv) {
              keep.push_back(st.fused_w.contiguous());
              if (st.fused_b.defined()) keep.push_back(st.fused_b.contiguous());
              w[st.layer->name] = {keep[keep.size() - (st.fused_b.defined() ? 2 : 1)].data_ptr<float>(),
                                   st.fused_b.defined() ? keep.back().data_ptr<float>() : nullptr};
            }
      program_->set_weights(w);
      program_key_ = fused_key_;
    }
    const bool use_mk = !use_prog && mk && prepare_fused(true);
    if (use_prog || use_mk || prepare_fused(false)) {
      // Chunks of the batch whose largest activation fits the cache budget.
      int64_t per_image = 0;
      for (const auto* l : desc_.layers()) per_image = std::max(per_image, l->out.numel());
      per_image *= static_cast<int64_t>(x.element_size());
      const int64_t n = x.size(0);
      int64_t chunk = n;
      if (exec_.inference_chunk_bytes > 0 && !relu_observer_ && per_image > 0)
        chunk = std::max<int64_t>(1, exec_.inference_chunk_bytes / per_image);
      if (chunk >= n) return forward_fused(x, use_mk, use_prog);
      std::vector<torch::Tensor> outs;
      for (int64_t i = 0; i < n; i += chunk)
        outs.push_back(forward_fused(x.narrow(0, i, std::min(chunk, n - i)), use_mk, use_prog));
      return torch::cat(outs);
    }
  }
  if (exec_.channels_last && cpu4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  for (auto& b : blocks_) {
    if (b.residual) {
      const torch::Tensor in = x;
      torch::Tensor skip = b.shortcut.empty() ? x : run(b.shortcut, x);
      x = add_skip(b.body, run(b.body, x), skip, in);
    } else {
      x = run(b.body, x);
    }
    x = run(b.post, x);
  }
  return x;
}

bool NetImpl::ensure_program() {
  if (!program_tried_) {
    program_tried_ = true;
    program_ = onednn::compile(desc_, exec_.winograd);
    program_key_.clear();
  }
  return program_ != nullptr;
}

torch::Tensor NetImpl::forward_fused(torch::Tensor x, bool mkldnn, bool program) {
  size_t first = 0;
  if (program) {
    x = x.contiguous();
    const arch::Shape s = program_->output_shape();
    torch::Tensor out = torch::empty({x.size(0), s.c, s.h, s.w}, x.options());
    program_->run(x.data_ptr<float>(), x.size(0), out.data_ptr<float>());
    x = out;
    first = static_cast<size_t>(program_->covered_blocks());
  } else if (mkldnn) {
    x = x.contiguous().to_mkldnn();
  } else if (exec_.channels_last && x.dim() == 4 && x.device().is_cpu()) {
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  for (size_t bi = first; bi < blocks_.size(); ++bi) {
    auto& b = blocks_[bi];
    if (b.residual) {
      const torch::Tensor in = x;
      torch::Tensor skip = b.shortcut.empty() ? x : run_fused(b.shortcut, x, mkldnn);
      x = add_skip(b.body, run_fused(b.body, x, mkldnn), skip, in);
    } else {
      x = run_fused(b.body, x, mkldnn);
    }
    x = run_fused(b.post, x, mkldnn);
  }
  return x.is_mkldnn() ? x.to_dense() : x;
}

std::vector<std::pair<const void*, int64_t>> NetImpl::state_key() {
  std::vector<std::pair<const void*, int64_t>> key;
  for (const auto& p : parameters()) key.emplace_back(p.data_ptr(), p._version());
  for (const auto& b : buffers()) key.emplace_back(b.data_ptr(), b._version());
  return key;
}

bool NetImpl::prepare_fused(bool mkldnn) {
  auto key = state_key();
  if (fused_ok_ && fused_mkldnn_ == mkldnn && key == fused_key_) return true;
  torch::NoGradGuard ng;
  fused_ok_ = false;
  program_key_.clear();  // the program takes the rebuilt weights, whatever the key
  for (auto& b : blocks_)
    for (auto* steps : {&b.body, &b.shortcut, &b.post}) {
      for (size_t i = 0; i < steps->size(); ++i) {
        Step& s = (*steps)[i];
        s.folded = false;
        s.fused_w = s.fused_b = s.packed_w = s.packed_b = torch::Tensor();
      }
      for (size_t i = 0; i < steps->size(); ++i) {
        Step& s = (*steps)[i];
        if (s.bn && !s.folded && mkldnn) return false;  // a BatchNorm without a conv before it
        if (!s.conv) continue;
        torch::Tensor w = s.conv->weight, bias = s.conv->bias;
        if (i + 1 < steps->size() && (*steps)[i + 1].bn) {
          Step& n = (*steps)[i + 1];
          const auto& o = n.bn->options;
          if (!o.track_running_stats()) {
            if (mkldnn) return false;
            continue;
          }
          torch::Tensor scale = torch::rsqrt(n.bn->running_var + o.eps());
          if (o.affine()) scale = scale * n.bn->weight;
          w = w * scale.view({-1, 1, 1, 1});
          bias = ((bias.defined() ? bias : torch::zeros_like(n.bn->running_mean)) - n.bn->running_mean) * scale;
          if (o.affine()) bias = bias + n.bn->bias;
          n.folded = true;
        }
        if (exec_.channels_last && w.device().is_cpu()) w = w.contiguous(torch::MemoryFormat::ChannelsLast);
        s.fused_w = w;
        s.fused_b = bias;
        if (mkldnn) {
          if (w.scalar_type() != torch::kFloat || !w.device().is_cpu()) return false;
          const arch::Layer& l = *s.layer;
          s.packed_w = at::mkldnn_reorder_conv2d_weight(w.contiguous().to_mkldnn(), {l.padding, l.padding},
                                                        {l.stride, l.stride}, {1, 1}, l.groups);
          s.packed_b = (bias.defined() ? bias : torch::zeros({w.size(0)}, w.options())).contiguous().to_mkldnn();
        }
      }
    }
  fused_key_ = std::move(key);
  fused_mkldnn_ = mkldnn;
  fused_ok_ = true;
  return true;
}

torch::Tensor NetImpl::run_fused(std::vector<Step>& steps, torch::Tensor x, bool mkldnn) {
  for (auto& s : steps) {
    switch (s.layer->op) {
      case arch::Op::Conv: {
        const arch::Layer& l = *s.layer;
        if (mkldnn)
          x = at::mkldnn_convolution(x, s.packed_w, s.packed_b, {l.padding, l.padding}, {l.stride, l.stride},
                                     {1, 1}, l.groups);
        else
          x = torch::conv2d(x, s.fused_w, s.fused_b, {l.stride, l.stride}, {l.padding, l.padding}, {1, 1},
                            l.groups);
        break;
      }
      case arch::Op::BatchNorm:
        if (!s.folded) x = s.bn->forward(x);
        break;
      case arch::Op::Linear:
        if (x.is_mkldnn()) x = x.to_dense();
        x = s.fc->forward(x);
        break;
      case arch::Op::ReLU:
        if (s.relu)
          x = torch::relu_(x);
        else if (s.masked)
          x = s.masked->forward(x);  // mkldnn tensors: one dense round trip
        else if (s.poly)
          x = s.poly->forward(x);  // likewise
        else
          break;
        if (relu_observer_) relu_observer_(s.layer->name, x);
        break;
      case arch::Op::MaxPool: x = torch::max_pool2d(x, s.layer->kernel, s.layer->stride, s.layer->padding); break;
      case arch::Op::GlobalAvgPool: x = torch::adaptive_avg_pool2d(x, {1, 1}); break;
      case arch::Op::Flatten:
        if (x.is_mkldnn()) x = x.to_dense();
        x = x.flatten(1);
        break;
    }
  }
  return x;
}

void NetImpl::init_parameters(const std::string& scheme, bool zero_residual) {
  if (scheme != "torch" && scheme != "kaiming")
    throw std::invalid_argument("weight init '" + scheme + "' is not accepted (accepted: torch, kaiming)");
  torch::NoGradGuard ng;
  for (auto& b : blocks_) {
    for (auto* steps : {&b.body, &b.shortcut, &b.post})
      for (auto& s : *steps)
        if (s.conv && scheme == "kaiming") {
          torch::nn::init::kaiming_normal_(s.conv->weight, 0.0, torch::kFanOut, torch::kReLU);
          if (s.conv->bias.defined()) s.conv->bias.zero_();
        }
    if (!zero_residual || !b.residual) continue;
    for (auto it = b.body.rbegin(); it != b.body.rend(); ++it)
      if (it->bn) {
        it->bn->weight.zero_();
        break;
      }
  }
}

Net build(const std::string& spec, const arch::InputSpec& input) {
  return Net(arch::build_network(spec, input));
}

}  // namespace dr::nn
