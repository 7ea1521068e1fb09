#include "nn/masked_relu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <sstream>

namespace dr::nn {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Elements per task of at::parallel_for: large enough that a task's overhead
// is noise, small enough that a 28x28 activation of one image still splits.
constexpr int64_t kGrain = 1 << 15;

// The backward loop, compiled for AVX-512, AVX2 and the x86-64 baseline;
// the loader picks the best the CPU has (GCC ifunc), as ATen does for its
// kernels. __restrict__: without it GCC guards the loop with overlap checks.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DR_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DR_VECTOR_CLONES
#endif

// The gradient through y = max(x, floor), from y: g where y > floor, else 0
// (relu's convention at 0; 1 everywhere on masked-out elements).
DR_VECTOR_CLONES void max_backward(const float* __restrict__ y, const float* __restrict__ g,
                                   const float* __restrict__ f, float* __restrict__ gx, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float gk = g[k];  // loaded unconditionally, so that the select vectorises
    gx[k] = y[k] > f[k] ? gk : 0.f;
  }
}

// Calls run(offset, floor + offset % period, length) over runs of a dense
// tensor of `total` elements that never cross an image, in parallel.
template <class F>
void for_each_run(int64_t total, const float* floor, int64_t period, const F& run) {
  at::parallel_for(0, total, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e;) {
      const int64_t j = i % period, len = std::min(e - i, period - j);
      run(i, floor + j, len);
      i += len;
    }
  });
}

// y = max(x, floor) in place: relu where the floor is 0, the identity where
// it is -inf. ATen's maximum, the floor broadcast over the batch in x's
// element order: one vectorised pass, measured 2x faster than a plain loop
// like max_backward's (docs/performance.md).
void floor_max(torch::Tensor& x, const torch::Tensor& floor) {
  at::maximum_out(x, x, x.dim() == 2 ? floor.view({1, -1}) : floor);
}

void floor_max_backward(const float* y, const float* g, float* gx, int64_t total, const torch::Tensor& floor) {
  for_each_run(total, floor.data_ptr<float>(), floor.numel(),
               [=](int64_t i, const float* f, int64_t n) { max_backward(y + i, g + i, f, gx + i, n); });
}

// In place on x (marked dirty), saving the result as relu_ does.
struct MaskedReluFn : torch::autograd::Function<MaskedReluFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor floor) {
    floor_max(x, floor);
    ctx->mark_dirty({x});
    ctx->save_for_backward({x, floor});
    return x;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& y = saved[0];
    const auto fmt = y.is_contiguous() ? torch::MemoryFormat::Contiguous : torch::MemoryFormat::ChannelsLast;
    const torch::Tensor g = grads[0].contiguous(fmt);
    torch::Tensor gx = torch::empty_like(y, fmt);
    floor_max_backward(y.data_ptr<float>(), g.data_ptr<float>(), gx.data_ptr<float>(), y.numel(), saved[1]);
    return {gx, torch::Tensor()};
  }
};

// The floor of one image in the element order of `fmt`: 0 kept, -inf masked out.
torch::Tensor floor_of(const torch::Tensor& keep, int64_t h, int64_t w, torch::MemoryFormat fmt) {
  const torch::Tensor k = keep.expand({1, keep.size(1), h, w});
  return torch::zeros(k.sizes(), torch::kFloat).masked_fill_(k.logical_not(), kNegInf).contiguous(fmt);
}

}  // namespace

torch::Tensor site_ops(const arch::Layer& site) {
  if (!site.mask) throw std::invalid_argument("ReLU site '" + site.name + "' has no mask");
  const auto& ops = site.mask->ops;
  const bool cw = site.mask->channelwise;
  const int64_t C = site.out.c, H = cw ? 1 : site.out.h, W = cw ? 1 : site.out.w;
  if (static_cast<int64_t>(ops.size()) != C * H * W)
    throw std::invalid_argument("ReLU site '" + site.name + "': its mask has " + std::to_string(ops.size()) +
                                " entries, the site needs " + std::to_string(C * H * W));
  return torch::from_blob(const_cast<uint8_t*>(ops.data()), {1, C, H, W}, torch::kUInt8).clone();
}

MaskedReLUImpl::MaskedReLUImpl(const arch::Layer& site)
    : name_(site.name), shape_(site.out), channelwise_(site.mask && site.mask->channelwise) {
  keep_ = site_ops(site).eq(static_cast<int>(arch::SiteOp::Relu));
  floor_nchw_ = floor_of(keep_, shape_.h, shape_.w, torch::MemoryFormat::Contiguous);
  floor_nhwc_ = floor_of(keep_, shape_.h, shape_.w, torch::MemoryFormat::ChannelsLast);
}

torch::Tensor MaskedReLUImpl::keep() const {
  return channelwise_ ? keep_.view({shape_.c}) : keep_.view({shape_.c, shape_.h, shape_.w});
}

void check_site_input(const std::string& name, const arch::Shape& shape, bool channelwise, const torch::Tensor& x) {
  const int64_t h = x.dim() == 4 ? x.size(2) : 1, w = x.dim() == 4 ? x.size(3) : 1;
  const bool fits = (x.dim() == 4 || x.dim() == 2) && x.size(1) == shape.c && (channelwise || (h == shape.h && w == shape.w));
  if (fits) return;
  std::ostringstream m;
  m << "ReLU site '" << name << "': its " << (channelwise ? "channel-wise" : "element-wise") << " mask is for "
    << shape.str() << (channelwise ? " (any height and width)" : "") << ", the input is " << x.sizes();
  throw std::invalid_argument(m.str());
}

torch::Tensor MaskedReLUImpl::forward(torch::Tensor x) {
  check_site_input(name_, shape_, channelwise_, x);
  if (x.is_mkldnn()) return forward(x.to_dense()).to_mkldnn();  // inference only: no autograd on mkldnn
  const bool nchw = x.is_contiguous();
  const bool nhwc = !nchw && x.dim() == 4 && x.is_contiguous(torch::MemoryFormat::ChannelsLast);
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat && (nchw || nhwc)) {
    // One pass, in place, over the floor of one image in x's element order (a
    // tensor contiguous in both orders, C or H x W being 1, has just one).
    const int64_t h = x.dim() == 4 ? x.size(2) : 1, w = x.dim() == 4 ? x.size(3) : 1;
    const auto fmt = nchw ? torch::MemoryFormat::Contiguous : torch::MemoryFormat::ChannelsLast;
    const torch::Tensor floor = h != shape_.h || w != shape_.w ? floor_of(keep_, h, w, fmt)  // channel-wise only
                                : nchw                          ? floor_nchw_
                                                                : floor_nhwc_;
    if (torch::GradMode::is_enabled() && x.requires_grad()) return MaskedReluFn::apply(x, floor);
    floor_max(x, floor);
    return x;
  }
  // Other devices, dtypes and strides: the textbook form, differentiable as is.
  torch::Tensor keep = keep_.to(x.device());
  if (x.dim() == 2) keep = keep.flatten(1);
  return torch::where(keep, torch::relu(x), x);
}

}  // namespace dr::nn
