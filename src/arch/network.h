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

// --- Limits -----------------------------------------------------------------
// Every count of a description (elements, ReLUs, FLOPs, params and their sums)
// is an int64_t. These bounds refuse an absurd spec or input with a SpecError
// before anything is allocated, and every product or sum of counts is checked
// against kMaxCount, so no accepted spec can overflow into a wrong answer.
// They are generous: the largest real networks (resnet110 on 3x64x64, resnet1202,
// vgg16 at alpha=64 on 3x4096x4096) stay far inside them. parse_spec,
// parse_shape, build_network and the synthetic --data grammar all read them here.
namespace limits {
// Blocks of one stage (blocks=): resnet1202 has 200.
constexpr int64_t kMaxBlocksPerStage = 1024;
// Layers of one network: 4 stages of kMaxBlocksPerStage blocks of at most 8
// layers is 32,768; this is a backstop for families with deeper blocks.
constexpr int64_t kMaxLayers = int64_t(1) << 17;  // 131,072
// Input image channels: RGB is 3, hyperspectral sensors about 200.
constexpr int64_t kMaxInputChannels = 1024;
// Input image height and width; also the largest first-conv stride (1/rho):
// a larger one keeps the same single pixel of every accepted input.
constexpr int64_t kMaxInputSide = 16384;
// Channels of one conv or features of one FC output (after alpha): vgg16's
// 4096-wide classifier at alpha=256.
constexpr int64_t kMaxChannels = int64_t(1) << 20;  // 1,048,576
// Classes of the classifier (ImageNet-21k has 21,841).
constexpr int64_t kMaxClasses = int64_t(1) << 20;  // 1,048,576
// Elements of one tensor, and ReLUs, FLOPs or params of one layer or of a
// whole network: half of int64_t's range, so one more sum cannot wrap.
constexpr int64_t kMaxCount = int64_t(1) << 62;  // 4,611,686,018,427,387,904
}  // namespace limits

// Throws SpecError "<what> exceed the limit of 2^62 = ..." (or, for a
// negative operand, that a count is negative): the one message of every count
// that does not fit.
[[noreturn]] void throw_bad_count(const char* what, int64_t a, int64_t b);
// a * b and a + b of counts (non-negative, at most limits::kMaxCount); throw
// through throw_bad_count when an operand is negative or the result does not fit.
inline int64_t count_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > limits::kMaxCount) throw_bad_count(what, a, b);
  return r;
}
inline int64_t count_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) || r > limits::kMaxCount) throw_bad_count(what, a, b);
  return r;
}

// C x H x W of one image (no batch dimension).
struct Shape {
  int64_t c = 0, h = 0, w = 0;
  // C x H x W; throws SpecError when it does not fit limits::kMaxCount.
  int64_t numel() const { return count_mul(count_mul(c, h, "elements of a tensor"), w, "elements of a tensor"); }
  std::string str() const;  // "64x32x32"
  bool operator==(const Shape& o) const { return c == o.c && h == o.h && w == o.w; }
};

// What one element of an activation site computes.
enum class SiteOp : uint8_t {
  Identity = 0,  // y = x: linearised (SNL), costs nothing privately
  Relu = 1,      // y = relu(x)
  Poly = 2,      // y = a*x^2 + b*x + c with its channel's coefficients: the
                 // site's parameter "<site>.poly", [3, C] (rows a, b, c)
};
const char* site_op_name(SiteOp op);  // "identity", "relu", "poly"

// What each element of a ReLU site computes (pixel-level linearisation, SNL;
// polynomial replacement, AutoReP): one SiteOp per element of the site's
// C x H x W output in CHW order (element-wise), or per channel (channel-wise).
struct ReluMask {
  std::vector<uint8_t> ops;  // SiteOp values
  bool channelwise = false;
  int64_t live = 0;   // ReLU elements of one image (channel-wise: ReLU channels x H x W)
  int64_t polys = 0;  // polynomial elements of one image, likewise
  // What element i (CHW order) of a site of shape `s` computes.
  SiteOp op_at(int64_t i, const Shape& s) const {
    return static_cast<SiteOp>(ops[static_cast<size_t>(channelwise ? i / (s.h * s.w) : i)]);
  }
  bool keeps(int64_t i, const Shape& s) const { return op_at(i, s) == SiteOp::Relu; }
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
  // ReLU elements when masked); 0 otherwise.
  int64_t relus() const;
  // Polynomial elements for one image (its mask's); 0 for any other layer.
  int64_t polys() const;
  // Multiply-accumulates of conv and FC layers for one image; 0 for others.
  int64_t flops() const;
  // Trainable parameters: conv/FC weights (+bias), BN weight and bias, a
  // site's polynomial coefficients (3 x C when any element is polynomial).
  int64_t params() const;
  // All three throw SpecError naming the layer when the count does not fit
  // limits::kMaxCount (or a mask's live count is not within its site).
  // Computes every count above and the shapes' elements: throws their
  // SpecError when one does not fit.
  void check_counts() const;
};

// What the entries of `m` make of the ReLU site `site` when they fit it:
// `ops` holds C x H x W (element-wise) or C (channel-wise) SiteOp values;
// channel-wise, each channel's op holds for its H x W elements. Throws
// std::invalid_argument naming the site. (m.live and m.polys are not read:
// this is what they must be.)
struct MaskCounts {
  int64_t relus = 0, polys = 0;
};
MaskCounts mask_counts(const Layer& site, const ReluMask& m);

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
  int64_t polys = 0;  // polynomial elements (not ReLUs: each costs a secure multiplication)
  // Checked: throws SpecError when a sum exceeds limits::kMaxCount.
  Totals& operator+=(const Totals& o) {
    relus = count_add(relus, o.relus, "total ReLUs");
    flops = count_add(flops, o.flops, "total FLOPs");
    params = count_add(params, o.params, "total params");
    polys = count_add(polys, o.polys, "total polynomial elements");
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
  // Throw SpecError naming the network when a sum exceeds limits::kMaxCount
  // (never for a network build_network returned without masks added since).
  Totals totals() const;
  // One row per stage in order, then "FC"/"head" rows where present.
  std::vector<StageTotals> stage_totals() const;
  // Whether some live ReLU site has a pixel-level mask.
  bool masked() const;
  // The spec, marked "+masks" when masked (for tables).
  std::string label() const { return masked() ? spec + " +masks" : spec; }
};

}  // namespace dr::arch
