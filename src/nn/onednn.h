#pragma once
// A oneDNN inference program for the convolutional part of a network: what
// nn::Net's fused inference runs on the CPU when deepreduce is built with
// oneDNN's headers (Debian: libdnnl-dev; CMake defines DEEPREDUCE_WITH_DNNL).
// No torch here: it reads the arch description and raw float buffers.
//
// Per convolution (BatchNorm already folded into its weights and bias) one
// oneDNN primitive with the following ReLU fused as a post-op, and the
// residual add (and the ReLU after it) fused into the last convolution of a
// block's body as sum + ReLU post-ops, written in place into the shortcut's
// buffer. 3x3 stride-1 convolutions use Winograd F(4x4, 3x3) where the CPU
// has it (AVX-512) and the output is at least 4x4: 2-3x faster than direct
// convolution on a 2-core AVX-512 machine, at ~1e-6 relative error. Weights
// are reordered once (set_weights), activations stay in oneDNN's blocked
// layouts, buffers are reused as soon as a value is dead.
//
// Coverage: a prefix of whole blocks whose layers are convolutions (each
// followed by a foldable BatchNorm or not), ReLUs, max pools and global
// average pools; the rest (flatten, FC) runs in LibTorch.
//
// A masked ReLU site (arch/relu_site.h) is one in-place binary max primitive,
// dst = max(dst, floor) with floor 0 on kept elements and -inf elsewhere,
// the floor laid out like the activation's first image (oneDNN's jit binary
// kernel, one pass; a channel-wise floor is expanded to C x H x W, since a
// per-channel operand on a blocked layout gets the reference kernel). It is not
// fused into the convolution: oneDNN 2.6 runs a convolution with a PReLU
// post-op, or a binary post-op whose operand is per element, only in its
// reference kernel, and Winograd takes no binary post-op at all. A site whose
// mask keeps nothing is no op; one that keeps everything a fused ReLU.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::nn::onednn {

// True when deepreduce was compiled with oneDNN.
bool available();

struct ConvWeights {
  const float* weight = nullptr;  // [out_ch, in_ch / groups, k, k], contiguous
  const float* bias = nullptr;    // [out_ch] or null
};

class Program {
 public:
  virtual ~Program() = default;
  // Blocks [0, covered_blocks()) of the description run here.
  virtual int covered_blocks() const = 0;
  // C x H x W of the output of the last covered block.
  virtual arch::Shape output_shape() const = 0;
  // The weights of every convolution in the covered blocks, by layer name
  // (copied; the pointers need only be valid during the call).
  virtual void set_weights(const std::map<std::string, ConvWeights>& w) = 0;
  // in: float [n, C, H, W] contiguous (NCHW); out: float [n, output_shape()]
  // contiguous. Uses the calling thread's OpenMP thread count.
  virtual void run(const float* in, int64_t n, float* out) = 0;
  // How many convolutions use Winograd (for a batch of n; diagnostics).
  virtual int winograd_convs(int64_t n) = 0;
};

// nullptr when oneDNN is not compiled in or the first block is not covered.
std::unique_ptr<Program> compile(const arch::Network& desc, bool winograd);

}  // namespace dr::nn::onednn
