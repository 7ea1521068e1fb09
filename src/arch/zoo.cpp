// The model zoo: ResNets (BasicBlock and CIFAR 6n+2), VGG16, MobileNetV1/V2,
// built as descriptions with shapes, then reduced (cull/keep, thin) by
// switching ReLU sites off. Definitions: shared/spec/DEEPREDUCE.md section 2.
#include <algorithm>
#include <cmath>

#include "arch/spec.h"

namespace dr::arch {

namespace {

// Appends layers to a Network while tracking the current shape. Layer names
// are "<block>.<local>", the module path the LibTorch network uses.
class Builder {
 public:
  Builder(Network& net) : net_(net), cur_(net.input) {}

  void begin_block(const std::string& name, const std::string& stage, bool residual = false) {
    net_.blocks.push_back(Block{name, stage, {}, residual, {}, {}});
    block_in_ = cur_;
    list_ = &net_.blocks.back().body;
  }
  // Shortcut layers read the block's input; afterwards the body's output is current again.
  void begin_shortcut() {
    body_out_ = cur_;
    cur_ = block_in_;
    list_ = &net_.blocks.back().shortcut;
  }
  void end_shortcut() {
    if (!(cur_ == body_out_))
      throw SpecError("internal: shortcut of " + net_.blocks.back().name + " gives " + cur_.str() +
                      ", body gives " + body_out_.str());
    list_ = &net_.blocks.back().post;
  }
  void begin_post() { list_ = &net_.blocks.back().post; }

  void conv(const std::string& name, int64_t out, int64_t k, int64_t stride, int64_t groups = 1) {
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
  void bn(const std::string& name) { push(make(name, Op::BatchNorm)); }
  void relu(const std::string& name, const std::string& role) {
    Layer l = make(name, Op::ReLU);
    l.role = role;
    push(l);
  }
  void maxpool(const std::string& name) {
    Layer l = make(name, Op::MaxPool);
    l.kernel = l.stride = 2;
    l.out = {cur_.c, spatial(cur_.h, 2, 2, 0, name), spatial(cur_.w, 2, 2, 0, name)};
    push(l);
  }
  // Global average pool, flatten, then the classifier: the usual head.
  void head(int64_t classes) {
    begin_block("head", "head");
    Layer p = make("avgpool", Op::GlobalAvgPool);
    p.out = {cur_.c, 1, 1};
    push(p);
    flatten("flatten");
    linear("fc", classes);
  }
  void flatten(const std::string& name) {
    Layer l = make(name, Op::Flatten);
    l.out = {cur_.numel(), 1, 1};
    push(l);
  }
  void linear(const std::string& name, int64_t out) {
    Layer l = make(name, Op::Linear);
    l.in_ch = cur_.numel();
    l.out_ch = out;
    l.bias = true;
    l.out = {out, 1, 1};
    push(l);
  }
  const Shape& shape() const { return cur_; }

 private:
  Layer make(const std::string& local, Op op) {
    Layer l;
    l.name = net_.blocks.back().name + "." + local;
    l.op = op;
    l.stage = net_.blocks.back().stage;
    l.in = l.out = cur_;
    return l;
  }
  void push(const Layer& l) {
    list_->push_back(l);
    cur_ = l.out;
  }
  int64_t spatial(int64_t size, int64_t k, int64_t stride, int64_t pad, const std::string& name) {
    const int64_t out = (size + 2 * pad - k) / stride + 1;
    if (size + 2 * pad < k || out < 1)
      throw SpecError("network '" + net_.spec + "' on input " + net_.input.str() +
                      ": spatial size shrinks below 1 at " + net_.blocks.back().name + "." + name +
                      " (its input is " + cur_.str() + "); use a larger input or a larger rho");
    return out;
  }

  Network& net_;
  Shape cur_, block_in_, body_out_;
  std::vector<Layer>* list_ = nullptr;
};

int64_t width(int64_t c, double alpha, const std::string& spec) {
  const auto w = static_cast<int64_t>(c * alpha + 1e-9);
  if (w < 1)
    throw SpecError("model spec '" + spec + "': alpha leaves a layer of " + std::to_string(c) +
                    " channels with none");
  return w;
}

int64_t stem_stride(double rho) { return std::llround(1.0 / rho); }

// The CIFAR stem of ResNets and MobileNets: 3x3 conv (stride int(1/rho)), BN,
// ReLU; it belongs to S1.
void add_stem(Builder& b, int64_t width, double rho) {
  b.begin_block("stem", "S1");
  b.conv("conv", width, 3, stem_stride(rho));
  b.bn("bn");
  b.relu("relu", "stem");
}

// ResNet with BasicBlocks (resnet10/18/34 and CIFAR 6n+2) or single-conv
// blocks (resnet6). Stage i is layer{i}; the stem goes with S1.
void build_resnet(Builder& b, const ModelSpec& s, const std::vector<int64_t>& widths,
                  const std::vector<int>& blocks, bool single_conv, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(widths[0], s.alpha, spec), s.rho);
  for (size_t st = 0; st < widths.size(); ++st) {
    const int64_t w = width(widths[st], s.alpha, spec);
    for (int i = 0; i < blocks[st]; ++i) {
      const int64_t stride = (i == 0 && st > 0) ? 2 : 1;
      const bool project = stride != 1 || b.shape().c != w;
      b.begin_block("layer" + std::to_string(st + 1) + "." + std::to_string(i),
                    "S" + std::to_string(st + 1), true);
      b.conv("conv1", w, 3, stride);
      b.bn("bn1");
      if (!single_conv) {
        b.relu("relu1", "relu1");
        b.conv("conv2", w, 3, 1);
        b.bn("bn2");
      }
      b.begin_shortcut();
      if (project) {
        b.conv("shortcut.0", w, 1, stride);
        b.bn("shortcut.1");
      }
      b.end_shortcut();
      if (single_conv)
        b.relu("relu", "relu");
      else
        b.relu("relu2", "relu2");
    }
  }
  b.head(classes);
}

void build_vgg16(Builder& b, const ModelSpec& s, int64_t classes) {
  const std::vector<std::vector<int64_t>> cfg = {
      {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  const std::string spec = s.canonical();
  for (size_t st = 0; st < cfg.size(); ++st) {
    b.begin_block("stage" + std::to_string(st + 1), "S" + std::to_string(st + 1));
    for (size_t i = 0; i < cfg[st].size(); ++i) {
      const std::string n = std::to_string(i + 1);
      b.conv("conv" + n, width(cfg[st][i], s.alpha, spec), 3, st == 0 && i == 0 ? stem_stride(s.rho) : 1);
      b.bn("bn" + n);
      b.relu("relu" + n, "vgg" + n);
    }
    b.maxpool("pool");
  }
  const int64_t hidden = width(4096, s.alpha, spec);
  b.begin_block("classifier", "FC");
  b.flatten("flatten");
  b.linear("fc1", hidden);
  b.relu("relu1", "fc");
  b.linear("fc2", hidden);
  b.relu("relu2", "fc");
  b.linear("fc3", classes);
}

// Stage of a block from the number of downsamplings so far: S1 is the input
// resolution, S2 half of it, ...
std::string resolution_stage(int downsamples) { return "S" + std::to_string(downsamples + 1); }

void build_mobilenetv1(Builder& b, const ModelSpec& s, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(32, s.alpha, spec), s.rho);
  const std::vector<std::pair<int64_t, int64_t>> cfg = {
      {64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2},  {512, 1},
      {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
  int downs = 0;
  for (size_t i = 0; i < cfg.size(); ++i) {
    const auto [out, stride] = cfg[i];
    if (stride == 2) ++downs;
    b.begin_block("blocks." + std::to_string(i), resolution_stage(downs));
    b.conv("dw", b.shape().c, 3, stride, b.shape().c);
    b.bn("dw_bn");
    b.relu("dw_relu", "dw");
    b.conv("pw", width(out, s.alpha, spec), 1, 1);
    b.bn("pw_bn");
    b.relu("pw_relu", "pw");
  }
  b.head(classes);
}

// torchvision's MobileNetV2 settings (t, c, n, s) with a stride-1 stem for
// 32x32 inputs; widths scaled by alpha throughout (the 1280 head too).
void build_mobilenetv2(Builder& b, const ModelSpec& s, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(32, s.alpha, spec), s.rho);
  struct Cfg { int64_t t, c, n, s; };
  const std::vector<Cfg> cfg = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int downs = 0, index = 0;
  for (const auto& c : cfg) {
    const int64_t out = width(c.c, s.alpha, spec);
    for (int64_t i = 0; i < c.n; ++i, ++index) {
      const int64_t stride = i == 0 ? c.s : 1;
      if (stride == 2) ++downs;
      const int64_t in = b.shape().c, hidden = in * c.t;
      b.begin_block("blocks." + std::to_string(index), resolution_stage(downs),
                    stride == 1 && in == out);
      if (c.t != 1) {
        b.conv("expand", hidden, 1, 1);
        b.bn("expand_bn");
        b.relu("expand_relu", "pw");
      }
      b.conv("dw", hidden, 3, stride, hidden);
      b.bn("dw_bn");
      b.relu("dw_relu", "dw");
      b.conv("project", out, 1, 1);
      b.bn("project_bn");
      if (stride == 1 && in == out) {
        b.begin_shortcut();
        b.end_shortcut();
      }
    }
  }
  b.begin_block("conv_last", resolution_stage(downs));
  b.conv("conv", width(1280, s.alpha, spec), 1, 1);
  b.bn("bn");
  b.relu("relu", "pw");
  b.head(classes);
}

// Switches off the ReLUs the spec removes: every ReLU of a culled (or
// not-kept) stage, and in the remaining stages those the thinning policy drops.
void apply_reduction(Network& net, const ModelSpec& s) {
  auto in = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  auto thinned = [&](const std::string& role) {
    if (!s.thin) return false;
    const std::string& p = *s.thin;
    if (p == "relu2" || p == "relu1" || p == "dw" || p == "pw") return role == p;
    if (p == "alternate") return role == "vgg2";
    return false;
  };
  for (Layer* l : net.mutable_layers()) {
    if (l->op != Op::ReLU || !in(net.stages, l->stage)) continue;  // VGG's FC ReLUs stay
    const bool stage_on = s.keep.empty() ? !in(s.cull, l->stage) : in(s.keep, l->stage);
    l->live = stage_on && !thinned(l->role);
  }
}

}  // namespace

Network build_network(const ModelSpec& s, const InputSpec& input) {
  const FamilyInfo& fam = family_info(s.family);
  Network net;
  net.family = s.family;
  net.spec = s.canonical();
  net.input = input.shape;
  net.classes = input.classes;
  net.stages = fam.stages;
  if (input.shape.numel() <= 0 || input.classes < 1)
    throw SpecError("input " + input.shape.str() + " with " + std::to_string(input.classes) +
                    " classes: need a positive shape and at least one class");
  Builder b(net);
  const std::vector<int>& blocks = s.blocks.empty() ? fam.default_blocks : s.blocks;
  if (s.family == "resnet6" || s.family == "resnet10" || s.family == "resnet18" ||
      s.family == "resnet34")
    build_resnet(b, s, {64, 128, 256, 512}, blocks, s.family == "resnet6", input.classes);
  else if (s.family == "vgg16")
    build_vgg16(b, s, input.classes);
  else if (s.family == "mobilenetv1")
    build_mobilenetv1(b, s, input.classes);
  else if (s.family == "mobilenetv2")
    build_mobilenetv2(b, s, input.classes);
  else  // resnet20/32/44/56/110
    build_resnet(b, s, {16, 32, 64}, blocks, false, input.classes);
  apply_reduction(net, s);
  return net;
}

}  // namespace dr::arch
