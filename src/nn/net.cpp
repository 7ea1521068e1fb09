#include "nn/net.h"

#include "arch/spec.h"

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

NetImpl::NetImpl(arch::Network desc) : desc_(std::move(desc)) {
  for (const auto& block : desc_.blocks) {
    BlockSteps bs;
    bs.residual = block.residual;
    for (const auto& l : block.body) bs.body.push_back(make_step(l));
    for (const auto& l : block.shortcut) bs.shortcut.push_back(make_step(l));
    for (const auto& l : block.post) bs.post.push_back(make_step(l));
    blocks_.push_back(std::move(bs));
  }
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
      if (l.live) s.relu = parent->register_module(name, ReLU(ReLUOptions().inplace(true)));
      break;
    default:  // pooling and flatten hold no state
      break;
  }
  return s;
}

torch::Tensor NetImpl::run(std::vector<Step>& steps, torch::Tensor x) {
  for (auto& s : steps) {
    switch (s.layer->op) {
      case arch::Op::Conv: x = s.conv->forward(x); break;
      case arch::Op::BatchNorm:
        x = bn_sync_ && is_training() ? synced_batch_norm(s.bn, x) : s.bn->forward(x);
        break;
      case arch::Op::Linear: x = s.fc->forward(x); break;
      case arch::Op::ReLU:
        if (!s.relu) break;  // removed by the spec: identity, no work
        x = s.relu->forward(x);
        if (relu_observer_) relu_observer_(s.layer->name, x);
        break;
      case arch::Op::MaxPool: x = torch::max_pool2d(x, s.layer->kernel, s.layer->stride); break;
      case arch::Op::GlobalAvgPool: x = torch::adaptive_avg_pool2d(x, {1, 1}); break;
      case arch::Op::Flatten: x = x.flatten(1); break;
    }
  }
  return x;
}

torch::Tensor NetImpl::forward(torch::Tensor x) {
  for (auto& b : blocks_) {
    if (b.residual) {
      torch::Tensor skip = b.shortcut.empty() ? x : run(b.shortcut, x);
      x = run(b.body, x);
      x = x + skip;
    } else {
      x = run(b.body, x);
    }
    x = run(b.post, x);
  }
  return x;
}

Net build(const std::string& spec, const arch::InputSpec& input) {
  return Net(arch::build_network(spec, input));
}

}  // namespace dr::nn
