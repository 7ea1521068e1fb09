#include "arch/builder.h"

#include <cmath>
#include <cstdio>

namespace dr::arch {

namespace {

// %g as in canonical specs, or with `digits` significant digits.
std::string fmt_g(double v, int digits = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

}  // namespace

Builder::Builder(Network& net) : net_(net), cur_(net.input) {}

void Builder::begin_block(const std::string& name, const std::string& stage, bool residual) {
  net_.blocks.push_back(Block{name, stage, {}, residual, {}, {}});
  block_in_ = cur_;
  list_ = &net_.blocks.back().body;
}

void Builder::begin_shortcut() {
  body_out_ = cur_;
  cur_ = block_in_;
  list_ = &net_.blocks.back().shortcut;
}

void Builder::end_shortcut() {
  if (!(cur_ == body_out_))
    throw SpecError("internal: shortcut of " + net_.blocks.back().name + " gives " + cur_.str() + ", body gives " +
                    body_out_.str());
  list_ = &net_.blocks.back().post;
}

void Builder::begin_post() { list_ = &net_.blocks.back().post; }

void Builder::conv(const std::string& name, int64_t out, int64_t k, int64_t stride, int64_t groups) {
  check_channels(name, out);
  if (groups < 1 || cur_.c % groups != 0 || out % groups != 0)
    fail("internal: " + name + " has " + std::to_string(groups) + " groups for " + std::to_string(cur_.c) + " -> " +
         std::to_string(out) + " channels");
  Layer l = make(name, Op::Conv);
  l.in_ch = cur_.c;
  l.out_ch = out;
  l.kernel = k;
  l.stride = stride;
  l.padding = k / 2;
  l.groups = groups;
  l.out = {out, spatial(cur_.h, k, stride, l.padding, name), spatial(cur_.w, k, stride, l.padding, name)};
  push(l);
}

void Builder::bn(const std::string& name) { push(make(name, Op::BatchNorm)); }

void Builder::relu(const std::string& name, const std::string& role) {
  Layer l = make(name, Op::ReLU);
  l.role = role;
  push(l);
}

void Builder::maxpool(const std::string& name) {
  Layer l = make(name, Op::MaxPool);
  l.kernel = l.stride = 2;
  l.out = {cur_.c, spatial(cur_.h, 2, 2, 0, name), spatial(cur_.w, 2, 2, 0, name)};
  push(l);
}

void Builder::head(int64_t classes) {
  begin_block("head", "head");
  Layer p = make("avgpool", Op::GlobalAvgPool);
  p.out = {cur_.c, 1, 1};
  push(p);
  flatten("flatten");
  linear("fc", classes);
}

void Builder::flatten(const std::string& name) {
  Layer l = make(name, Op::Flatten);
  l.out = {cur_.numel(), 1, 1};
  push(l);
}

void Builder::linear(const std::string& name, int64_t out) {
  check_channels(name, out);
  Layer l = make(name, Op::Linear);
  l.in_ch = cur_.numel();
  l.out_ch = out;
  l.bias = true;
  l.out = {out, 1, 1};
  push(l);
}

Layer Builder::make(const std::string& local, Op op) {
  Layer l;
  l.name = net_.blocks.back().name + "." + local;
  l.op = op;
  l.stage = net_.blocks.back().stage;
  l.in = l.out = cur_;
  return l;
}

// Every layer goes through here: its shapes and counts are checked before it
// is stored, so a description that was built has no count that does not fit.
void Builder::push(const Layer& l) {
  if (layers_ >= limits::kMaxLayers)
    fail("more than " + std::to_string(limits::kMaxLayers) + " layers (the limit per network); use fewer blocks");
  try {
    l.check_counts();
  } catch (const SpecError& e) {
    fail(std::string(e.what()) + "; use a smaller input or alpha");
  }
  list_->push_back(l);
  ++layers_;
  cur_ = l.out;
}

void Builder::check_channels(const std::string& name, int64_t n) {
  if (n < 1 || n > limits::kMaxChannels)
    fail("layer '" + net_.blocks.back().name + "." + name + "' would have " + std::to_string(n) +
         " channels, outside 1.." + std::to_string(limits::kMaxChannels) + " (the limit per layer)");
}

void Builder::fail(const std::string& what) const {
  throw SpecError("network '" + net_.spec + "' on input " + net_.input.str() + ": " + what);
}

int64_t Builder::spatial(int64_t size, int64_t k, int64_t stride, int64_t pad, const std::string& name) {
  const std::string where = net_.blocks.back().name + "." + name;
  if (k < 1 || stride < 1 || pad < 0 || size < 1)
    fail("internal: " + where + " has size " + std::to_string(size) + ", kernel " + std::to_string(k) + ", stride " +
         std::to_string(stride) + ", padding " + std::to_string(pad));
  int64_t padded = 0;
  if (__builtin_mul_overflow(pad, 2, &padded) || __builtin_add_overflow(padded, size, &padded) ||
      padded > limits::kMaxCount)
    fail("the padded size of " + where + " exceeds the limit of 2^62");
  if (padded < k)
    fail("spatial size shrinks below 1 at " + where + " (its input is " + cur_.str() +
         "); use a larger input or a larger rho");
  return (padded - k) / stride + 1;
}

int64_t width(int64_t c, double alpha, const std::string& spec) {
  // Compared as a double first: converting a double beyond int64_t's range is undefined.
  const double w = static_cast<double>(c) * alpha + 1e-9;
  if (!(w < static_cast<double>(limits::kMaxChannels) + 1))
    throw SpecError("model spec '" + spec + "': alpha=" + fmt_g(alpha) + " is too large: it would make a layer of " +
                    std::to_string(c) + " channels " + fmt_g(std::floor(w), 15) + " wide (at most " +
                    std::to_string(limits::kMaxChannels) + " channels per layer)");
  if (w < 1)
    throw SpecError("model spec '" + spec + "': alpha leaves a layer of " + std::to_string(c) + " channels with none");
  return static_cast<int64_t>(w);
}

std::string rho_problem(double rho, const std::string& text) {
  if (!(rho > 0 && rho <= 1))
    return "rho must be 1/k for an integer stride k >= 1 (e.g. 1, 0.5, 0.25); got " + text;
  // Compared as a double first: llround of a value beyond int64_t's range is undefined.
  const double inv = 1.0 / rho;
  if (!(inv < static_cast<double>(limits::kMaxInputSide) + 0.5))
    return "rho=" + text + " is too small: the first conv's stride 1/rho = " + fmt_g(inv, 15) + " is above " +
           std::to_string(limits::kMaxInputSide) + ", the largest input side and so the largest stride (rho >= 1/" +
           std::to_string(limits::kMaxInputSide) + ")";
  if (std::fabs(inv - std::round(inv)) > 1e-6)
    return "rho must be 1/k for an integer stride k >= 1 (e.g. 1, 0.5, 0.25); got " + text;
  return "";
}

int64_t stem_stride(double rho) {
  const std::string problem = rho_problem(rho, fmt_g(rho));
  if (!problem.empty()) throw SpecError(problem);
  return std::llround(1.0 / rho);
}

void add_stem(Builder& b, int64_t width, double rho) {
  b.begin_block("stem", "S1");
  b.conv("conv", width, 3, stem_stride(rho));
  b.bn("bn");
  b.relu("relu", "stem");
}

std::string resolution_stage(int downsamples) { return "S" + std::to_string(downsamples + 1); }

}  // namespace dr::arch
