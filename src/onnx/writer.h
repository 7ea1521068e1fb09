#pragma once
// ONNX models out: a deepreduce network with its weights as an ONNX file
// (opset 13, what EzPC's OnnxBridge, pinned to onnx 1.12, reads; CrypTen's
// from_onnx reads it too). Torch-free; needs libonnx as the reader does.
//
// What each layer becomes (docs/onnx.md, "Out"):
//   conv -> Conv (with --fold-bn the BatchNorm after it folded into its
//   weight and bias), bn -> BatchNormalization, a live ReLU -> Relu, a
//   removed ReLU -> nothing, max pooling -> MaxPool, global pooling ->
//   GlobalAveragePool, flatten -> Flatten, fc -> Gemm (transB), a residual
//   join -> Add.
//   A pixel-masked site of ReLUs and identities (SNL), by MaskForm:
//     PRelu: PRelu with a 0/1 slope tensor ([C,H,W], or [C,1,1]
//       channel-wise): slope 0 is a ReLU, slope 1 an identity.
//     OnnxBridge (only ops EzPC's OnnxBridge lowers: no PRelu, no Split):
//       a channel-wise mask right after a convolution (+ its BatchNorm)
//       splits that convolution into runs of consecutive channels, a Relu on
//       each ReLU run, and a Concat of the runs in order; after anything
//       else, 1x1 convolutions of 0/1 weights select the runs. Only the ReLU
//       channels meet a Relu. An element-wise mask as relu(x)*R + x*B in
//       Relu, Mul and Add (R the ReLU elements, B = 1-R): the same function,
//       but its Relu runs on every element of the site.
//   A site with polynomial elements (AutoReP-style) -> Mul/Add:
//   relu(x)*R + x*B + (x*x)*A + K with per-element constants (R: the ReLU
//   elements, B: identities plus the polynomials' b, A and K their a and c).
//   onnx::read_model reads every one of these forms back as the same site.
#include <map>
#include <string>

#include "onnx/reader.h"

namespace dr::onnx {

// How masked sites of ReLUs and identities are written (above).
enum class MaskForm { PRelu, OnnxBridge };

struct WriteOptions {
  bool fold_bn = false;  // fold each BatchNorm into the convolution before it
  MaskForm masks = MaskForm::PRelu;
  std::string producer_version;  // deepreduce's version, recorded in the file
};

// What write_model wrote.
struct WriteReport {
  int64_t nodes = 0, initializers = 0, bytes = 0;
  int64_t folded_bn = 0, prelu_sites = 0, poly_sites = 0;
  int64_t split_sites = 0;   // channel masks as split convolutions + Concat
  int64_t muladd_sites = 0;  // masks of ReLUs and identities as Relu/Mul/Add
};

// Writes `net` with `weights` (state-dict names, reader.h's Tensor) to
// `path` atomically, after the ONNX checker passed on it. Throws
// std::runtime_error naming the missing or misshapen weight, or a ReadError
// when deepreduce was built without libonnx.
WriteReport write_model(const arch::Network& net, const std::map<std::string, Tensor>& weights,
                        const std::string& path, const WriteOptions& o);

}  // namespace dr::onnx
