// Helpers on ONNX protobuf messages (proto.h).
#include "onnx/proto.h"

#ifdef DEEPREDUCE_WITH_ONNX
#include <cctype>
#include <cmath>
#include <cstring>

#include "arch/network.h"
#include "util/strings.h"

namespace dr::onnx {

namespace pb = ::onnx;

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "a scalar" : s;
}

std::vector<int64_t> dims(const pb::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }

std::string scoped_name(const pb::NodeProto& n) {
  std::vector<std::string> parts;
  for (const auto& p : util::split(n.name(), '/'))
    if (!p.empty()) parts.push_back(p);
  if (parts.size() == 1 && parts[0] == n.op_type()) return util::lower(n.op_type());  // "/Relu": a torch.relu
  if (parts.size() > 1 && (parts.back() == n.op_type() || parts.back().rfind(n.op_type() + "_", 0) == 0))
    parts.pop_back();
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty() && p.rfind(out + ".", 0) == 0)
      out = p;
    else
      out += (out.empty() ? "" : ".") + p;
  }
  std::string clean;
  for (char c : out) clean += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') ? c : '_';
  std::string joined;
  for (const auto& seg : util::split(clean, '.'))
    if (!seg.empty()) joined += (joined.empty() ? "" : ".") + seg;
  return joined;
}

Tensor float_tensor(const pb::TensorProto& t, const std::vector<int64_t>& expect, const std::string& what,
                    const std::string& path) {
  const auto fail = [&](const std::string& why) { throw ReadError(path + ": " + what + " '" + t.name() + "' " + why); };
  if (t.data_type() != pb::TensorProto::FLOAT)
    fail("holds " + pb::TensorProto::DataType_Name(t.data_type()) + " values, not FLOAT (export the model in float32)");
  if (t.data_location() == pb::TensorProto::EXTERNAL)
    fail("keeps its values in an external file: save the model with its weights inside");
  if (dims(t) != expect) fail("is " + dims_str(dims(t)) + ", expected " + dims_str(expect));
  int64_t n = 1;
  for (int64_t d : expect) n = arch::count_mul(n, d, "elements of a tensor");
  Tensor out;
  out.shape = expect;
  if (t.has_raw_data()) {
    if (static_cast<int64_t>(t.raw_data().size()) != n * 4)
      fail("has " + std::to_string(t.raw_data().size()) + " bytes for " + std::to_string(n) + " floats");
    out.values.resize(static_cast<size_t>(n));
    std::memcpy(out.values.data(), t.raw_data().data(), static_cast<size_t>(n) * 4);  // little-endian, as ONNX
  } else {
    if (t.float_data_size() != n)
      fail("has " + std::to_string(t.float_data_size()) + " values for " + std::to_string(n));
    out.values.assign(t.float_data().begin(), t.float_data().end());
  }
  for (float v : out.values)
    if (!std::isfinite(v)) fail("holds a value that is not finite");
  return out;
}

const pb::AttributeProto* find_attribute(const pb::NodeProto& n, const char* name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

}  // namespace dr::onnx
#endif
