#include "pipeline/onnx_model.h"

#include <algorithm>

#include "train/common.h"
#include "util/provenance.h"

namespace dr::pipeline {

nn::Net onnx_network(const onnx::Model& m) {
  nn::Net net(m.net);
  train::load_into(net, train::onnx_state_dict(m), true, "the initializers of " + m.net.spec);
  return net;
}

train::EvalResult evaluate_onnx(const OnnxEvalOptions& o) {
  if (o.data.empty()) throw std::invalid_argument("an ONNX model has no dataset of its own: give --data");
  const onnx::Model m = onnx::read_model(o.model);  // the model is checked before any data is read
  nn::Net net = onnx_network(m);
  return train::evaluate_net(net, o.model, o.model + " takes", {o.data, 0, o.mean, o.std, o.threads, o.device, 2});
}

onnx::WriteReport export_run(const std::string& run, const std::string& out, onnx::WriteOptions o) {
  if (!onnx::is_onnx_path(out))
    throw std::invalid_argument("--out " + out + ": name the file <name>.onnx (what the commands read as a model)");
  const arch::Network net = train::run_network(run);             // config, result and masks agree
  const train::StateDict state = train::load_run_weights(run);  // weights.pt against its SHA-256
  std::map<std::string, onnx::Tensor> weights;
  for (const auto& [name, t] : state) {
    if (t.scalar_type() != torch::kFloat32) continue;  // num_batches_tracked
    const torch::Tensor c = t.contiguous();
    onnx::Tensor w;
    w.shape = c.sizes().vec();
    w.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    weights[name] = std::move(w);
  }
  o.producer_version = util::version_string();
  return onnx::write_model(net, weights, out, o);
}

}  // namespace dr::pipeline
