#include "arch/builder.h"

#include <cmath>

namespace dr::arch {

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

void Builder::push(const Layer& l) {
  list_->push_back(l);
  cur_ = l.out;
}

int64_t Builder::spatial(int64_t size, int64_t k, int64_t stride, int64_t pad, const std::string& name) {
  const int64_t out = (size + 2 * pad - k) / stride + 1;
  if (size + 2 * pad < k || out < 1)
    throw SpecError("network '" + net_.spec + "' on input " + net_.input.str() + ": spatial size shrinks below 1 at " +
                    net_.blocks.back().name + "." + name + " (its input is " + cur_.str() +
                    "); use a larger input or a larger rho");
  return out;
}

int64_t width(int64_t c, double alpha, const std::string& spec) {
  const auto w = static_cast<int64_t>(c * alpha + 1e-9);
  if (w < 1)
    throw SpecError("model spec '" + spec + "': alpha leaves a layer of " + std::to_string(c) + " channels with none");
  return w;
}

int64_t stem_stride(double rho) { return std::llround(1.0 / rho); }

void add_stem(Builder& b, int64_t width, double rho) {
  b.begin_block("stem", "S1");
  b.conv("conv", width, 3, stem_stride(rho));
  b.bn("bn");
  b.relu("relu", "stem");
}

std::string resolution_stage(int downsamples) { return "S" + std::to_string(downsamples + 1); }

}  // namespace dr::arch
