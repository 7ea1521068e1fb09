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
  train::set_threads(o.threads);
  const torch::Device dev = train::resolve_device(o.device);
  data::DataSplit split = data::load_dataset(o.data);
  const arch::InputSpec in = train::input_of(split.train);
  if (!(in.shape == m.net.input) || in.classes != m.net.classes)
    throw std::invalid_argument("data '" + o.data + "' gives " + in.shape.str() + " with " +
                                std::to_string(in.classes) + " classes; " + o.model + " takes " + m.net.input.str() +
                                " with " + std::to_string(m.net.classes));
  for (const auto& [v, name] : {std::pair{&o.mean, "--mean"}, std::pair{&o.std, "--std"}}) {
    if (v->empty()) continue;
    if (static_cast<int64_t>(v->size()) != in.shape.c)
      throw std::invalid_argument(std::string(name) + " has " + std::to_string(v->size()) + " values for " +
                                  std::to_string(in.shape.c) + " channels");
    if (name == std::string("--std") && std::any_of(v->begin(), v->end(), [](double s) { return !(s > 0); }))
      throw std::invalid_argument("--std values must be positive");
  }
  if (!o.mean.empty()) split.test.mean.assign(o.mean.begin(), o.mean.end());
  if (!o.std.empty()) split.test.std.assign(o.std.begin(), o.std.end());
  net->to(dev);
  const train::EpochStats s = train::run_eval(net, split.test, dev, 2);
  const arch::Totals totals = m.net.totals();
  return {o.model, o.data, static_cast<int64_t>(s.images), totals.relus, s.correct / std::max(1.0, s.images),
          s.loss / std::max(1.0, s.images), totals.polys};
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
