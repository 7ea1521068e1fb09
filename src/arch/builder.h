#pragma once
// What the family files build descriptions with: a Builder that appends
// layers to a Network while tracking the current shape, and the helpers every
// family shares (channel scaling, the CIFAR stem, resolution stages).
#include <string>

#include "arch/network.h"

namespace dr::arch {

// Layer names are "<block>.<local>", the module path of the LibTorch network.
class Builder {
 public:
  explicit Builder(Network& net);

  // A new block; its layers go to the body until begin_shortcut/begin_post.
  void begin_block(const std::string& name, const std::string& stage, bool residual = false);
  // Shortcut layers read the block's input; afterwards the body's output is current again.
  void begin_shortcut();
  void end_shortcut();
  void begin_post();

  void conv(const std::string& name, int64_t out, int64_t k, int64_t stride, int64_t groups = 1);
  void bn(const std::string& name);
  void relu(const std::string& name, const std::string& role);
  void maxpool(const std::string& name);
  // Global average pool, flatten, then the classifier: the usual head.
  void head(int64_t classes);
  void flatten(const std::string& name);
  void linear(const std::string& name, int64_t out);
  const Shape& shape() const { return cur_; }
  const Network& network() const { return net_; }

 private:
  Layer make(const std::string& local, Op op);
  // Appends `l` after checking the layer limit and that its counts fit.
  void push(const Layer& l);
  int64_t spatial(int64_t size, int64_t k, int64_t stride, int64_t pad, const std::string& name);
  // Refuses a conv/FC output of `n` channels outside 1..limits::kMaxChannels.
  void check_channels(const std::string& name, int64_t n);
  // Throws SpecError "network '<spec>' on input <shape>: <what>".
  [[noreturn]] void fail(const std::string& what) const;

  Network& net_;
  Shape cur_, block_in_, body_out_;
  std::vector<Layer>* list_ = nullptr;
  int64_t layers_ = 0;
};

// int(c * alpha); throws SpecError when a layer is left with no channel or
// with more than limits::kMaxChannels (naming alpha as too large).
int64_t width(int64_t c, double alpha, const std::string& spec);
// Why rho (written `text` in the spec) is refused, or "" when it is accepted:
// 1/rho must be an integer stride in 1..limits::kMaxInputSide. The one rho
// check, shared by parse_spec, build_network and stem_stride.
std::string rho_problem(double rho, const std::string& text);
// int(1 / rho): the stride of the first convolution. Throws SpecError for a
// rho that rho_problem refuses.
int64_t stem_stride(double rho);
// The CIFAR stem of ResNets and MobileNets: 3x3 conv (stride int(1/rho)), BN,
// ReLU; it belongs to S1.
void add_stem(Builder& b, int64_t width, double rho);
// Stage of a block from the number of downsamplings so far: S1 is the input
// resolution, S2 half of it, ...
std::string resolution_stage(int downsamples);

}  // namespace dr::arch
