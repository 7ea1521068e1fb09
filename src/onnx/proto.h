#pragma once
// Helpers on ONNX protobuf messages shared by the reader (reader.cpp) and the
// folding of written site forms (site_forms.cpp). Internal to src/onnx;
// needs libonnx (DEEPREDUCE_WITH_ONNX).
#ifdef DEEPREDUCE_WITH_ONNX
#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "onnx/reader.h"

namespace dr::onnx {

std::string dims_str(const std::vector<int64_t>& d);  // "64x3x3x3", "a scalar"
std::vector<int64_t> dims(const ::onnx::TensorProto& t);

// "/layer1/layer1.0/conv1/Conv" (PyTorch's scope names) -> "layer1.0.conv1";
// any other name keeps its characters that a module path may hold.
std::string scoped_name(const ::onnx::NodeProto& n);

// The values of float tensor `t` of exactly `expect` dims, checked (type,
// inline data, byte count, finite values) before they are copied. Throws
// ReadError "<path>: <what> '<name>' ...".
Tensor float_tensor(const ::onnx::TensorProto& t, const std::vector<int64_t>& expect, const std::string& what,
                    const std::string& path);

const ::onnx::AttributeProto* find_attribute(const ::onnx::NodeProto& n, const char* name);

}  // namespace dr::onnx
#endif
