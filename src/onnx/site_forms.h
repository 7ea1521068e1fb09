#pragma once
// The forms `deepreduce export` writes for a ReLU site besides Relu and PRelu
// (writer.h), folded back into one site node before the reader walks the
// graph, so that every written form reads back as the site it came from:
//   - relu(x)*R + x*B [+ (x*x)*A + K] in Relu, Mul and Add (a mask in
//     OnnxBridge's form, a site with polynomials): a tensor x that feeds only
//     Relu(x) and Mul(x, ...) nodes starts a graph of Relu(x), Mul(x, x), Mul
//     by a constant, Add of two such terms and Add of a constant that ends in
//     one tensor y;
//   - a convolution split into runs of output channels (a BatchNormalization
//     per run, or none), a Relu on some runs, and a Concat of the runs on the
//     channel axis (a channel mask in OnnxBridge's form): one Conv, one
//     BatchNormalization and a site whose ReLU channels are the runs that
//     had a Relu.
// Internal to src/onnx; needs libonnx (DEEPREDUCE_WITH_ONNX).
#ifdef DEEPREDUCE_WITH_ONNX
#include <onnx/onnx_pb.h>

#include <map>
#include <string>

#include "onnx/reader.h"

namespace dr::onnx {

// What a site computes per element: relu(x)*relu + x*linear + x*x*square +
// constant. Each term's shape broadcasts (NumPy's rules) to the site's
// N x C x H x W; an empty term is 0.
struct SiteTerms {
  Tensor relu, linear, square, constant;
};

// The nodes fold_site_forms puts in place of a site: op kSiteOp of domain
// kSiteDomain, one input x, one output y; named "/<site>/Site".
constexpr const char* kSiteDomain = "deepreduce.site";
constexpr const char* kSiteOp = "Site";

// Rewrites `g`: each form above becomes a site node (a split convolution
// also one Conv and its BatchNormalization); returns each site node's terms
// by its output's name. A graph that holds a node of kSiteDomain already is
// refused (ReadError naming `path`); anything that is not one of the forms
// is left as it is, for the reader to accept or refuse.
std::map<std::string, SiteTerms> fold_site_forms(::onnx::GraphProto& g, const std::string& path);

}  // namespace dr::onnx
#endif
