#pragma once
// The network description: layers with shapes, computed from the input shape
// before anything is allocated. Everything that counts ReLUs, FLOPs and
// parameters, and the LibTorch module builder (src/nn), reads this.
// No torch headers here: this builds in seconds.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace dr::arch {

// A bad model spec, input shape or dataset preset. The message names the
// offending part and lists what is accepted.
struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// C x H x W of one image (no batch dimension).
struct Shape {
  int64_t c = 0, h = 0, w = 0;
  int64_t numel() const { return c * h * w; }
  std::string str() const;  // "64x32x32"
  bool operator==(const Shape& o) const { return c == o.c && h == o.h && w == o.w; }
};

// Which elements of a ReLU site keep their ReLU (pixel-level linearisation,
// SNL): a kept element is y = relu(x), any other passes its input through
// (y = x) and costs nothing. Element-wise: one entry per element of the
// site's C x H x W output, in CHW order; channel-wise: one entry per channel.
struct ReluMask {
  std::vector<uint8_t> keep;  // 0 or 1
  bool channelwise = false;
  int64_t live = 0;           // kept elements of one image (channel-wise: kept channels x H x W)
  // Whether element i (CHW order) of a site of shape `s` keeps its ReLU.
  bool keeps(int64_t i, const Shape& s) const;
};

enum class Op { Conv, BatchNorm, ReLU, MaxPool, GlobalAvgPool, Flatten, Linear };
const char* op_name(Op op);  // "conv", "bn", "relu", ...

struct Layer {
  std::string name;   // module path, e.g. "layer2.0.relu1": the LibTorch name
  Op op = Op::Conv;
  std::string stage;  // "S1".."Sk"; "head" for pooling/FC; "FC" for VGG's FC ReLUs
  Shape in, out;
  // Conv: channels, kernel, stride, padding, groups. Linear: in_ch/out_ch are
  // features. Pools: kernel and stride.
  int64_t in_ch = 0, out_ch = 0, kernel = 0, stride = 1, padding = 0, groups = 1;
  bool bias = false;
  // ReLU only. `role` is what thinning policies select on (relu1, relu2, dw,
  // pw, expand, vgg1..vgg3, fc). `live` is false for a ReLU the spec removed:
  // it is an identity and costs nothing.
  std::string role;
  bool live = true;
  // Pixel-level mask of a live ReLU; null: every element is live.
  std::shared_ptr<const ReluMask> mask;

  // Live ReLU elements for one image: C x H x W of a live ReLU (its mask's
  // kept elements when masked); 0 otherwise.
  int64_t relus() const;
  // Multiply-accumulates of conv and FC layers for one image; 0 for others.
  int64_t flops() const;
  // Trainable parameters: conv/FC weights (+bias), BN weight and bias.
  int64_t params() const;
};

// One unit of the forward graph:
//   residual:  y = post( body(x) + shortcut(x) )   (empty shortcut = identity)
//   otherwise: y = post( body(x) )
struct Block {
  std::string name;   // "stem", "layer2.0", "stage3", "blocks.4", "head"
  std::string stage;
  std::vector<Layer> body;
  bool residual = false;
  std::vector<Layer> shortcut;
  std::vector<Layer> post;
};

struct Totals {
  int64_t relus = 0, flops = 0, params = 0;
  Totals& operator+=(const Totals& o) {
    relus += o.relus;
    flops += o.flops;
    params += o.params;
    return *this;
  }
};

struct StageTotals {
  std::string name;
  Totals totals;
};

struct Network {
  std::string family;
  std::string spec;  // canonical model spec that produced it
  Shape input;
  int64_t classes = 0;
  std::vector<std::string> stages;  // the stages a spec can cull/keep, in order
  std::vector<Block> blocks;

  // Every layer in forward order (per block: body, shortcut, post).
  std::vector<const Layer*> layers() const;
  std::vector<Layer*> mutable_layers();
  Shape output() const;
  Totals totals() const;
  // One row per stage in order, then "FC"/"head" rows where present.
  std::vector<StageTotals> stage_totals() const;
};

}  // namespace dr::arch
