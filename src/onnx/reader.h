#pragma once
// ONNX models in: a CNN's graph becomes an arch::Network (so every count,
// cost, stage and ReLU site of deepreduce applies to it) and its initializers
// become weights by the names the LibTorch network of that description uses
// ("<layer>.weight", "<layer>.bias", a BatchNorm's running_mean/running_var).
// Torch-free; reads the file with Debian's libonnx (the ONNX protobuf schema
// and its checker) where deepreduce was built with it (onnx::available()).
//
// Accepted graphs (docs/onnx.md): one float input N x C x H x W, one output
// N x classes; the nodes form a chain of blocks y = post(body(x) + shortcut(x))
// (ResNets, MobileNetV2) or y = body(x) (VGGs, plain CNNs). Ops: Conv (square
// kernel, equal strides and pads, groups, bias), BatchNormalization
// (inference), Relu, MaxPool (square, padded), GlobalAveragePool, ReduceMean
// over H and W, AveragePool over the whole image, Flatten / Reshape to
// N x features, Gemm, MatMul (+ Add of a constant), Add of two branches,
// Identity and Dropout (inference: nothing); the ReLU sites export writes
// (PRelu, Relu/Mul/Add, a convolution split by channels with Concat:
// site_forms.h). Anything else is refused naming the node, its op and what
// is accepted.
//
// Stages: by spatial resolution (S1 is the first ReLU-bearing resolution...
// every change of H x W starts a new one), as the zoo's MobileNets; the
// pooling and classifier are "head", ReLUs between fully connected layers
// "FC". ReLU roles for thinning: "relu1" inside a residual body, "relu2"
// after a residual add, "relu" in a plain chain, "fc" between FC layers.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "arch/spec.h"

namespace dr::onnx {

// A file that is not an accepted ONNX model: names the file, the node or
// tensor and what is accepted.
struct ReadError : arch::SpecError {
  using arch::SpecError::SpecError;
};

// A weight in LibTorch's layout (conv OIHW, FC out x in), row-major.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

struct Model {
  arch::Network net;  // family "onnx", spec: the file's name
  std::map<std::string, Tensor> weights;  // state-dict name -> values
  int64_t opset = 0;                       // of the default domain
  std::string producer;                    // "pytorch 1.13.1", ...
};

// The limits a file is checked against before anything is allocated (the
// network's own are those of arch/network.h).
namespace limits {
// Protobuf's own ceiling for one message.
constexpr int64_t kMaxFileBytes = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxNodes = int64_t(1) << 17;
}  // namespace limits

// Whether deepreduce was built with libonnx (otherwise read_model throws a
// ReadError saying how to build with it).
bool available();
// Whether `text` names an ONNX file (ends in ".onnx"): what the commands
// taking a spec or a run check first.
bool is_onnx_path(const std::string& text);
// The ops read_model accepts, for messages and `deepreduce models`.
std::string accepted_ops();

// Reads, checks and maps `path`. Throws ReadError.
Model read_model(const std::string& path);

// Makes arch read ONNX files as model families (arch/family.h): a spec
// "model.onnx[:cull=..]" then builds wherever a spec does. The CLI's main
// calls it.
void install_network_reader();

}  // namespace dr::onnx
