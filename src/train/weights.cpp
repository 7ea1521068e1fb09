#include "train/weights.h"

#include <sstream>

#include "train/config.h"
#include "train/settings.h"
#include "train/trainer.h"
#include "util/fs.h"
#include "util/hash.h"

namespace dr::train {

StateDict state_dict(nn::Net& net) {
  StateDict sd;
  for (const auto& p : net->named_parameters()) sd[p.key()] = p.value().detach().to(torch::kCPU);
  for (const auto& b : net->named_buffers()) sd[b.key()] = b.value().detach().to(torch::kCPU);
  return sd;
}

std::string error_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10 ? c10->what_without_backtrace() : e.what();
  const auto nl = m.find('\n');
  return nl == std::string::npos ? m : m.substr(0, nl);
}

std::string save_weights(nn::Net& net, const std::string& path, const StateDict& extra) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : state_dict(net)) dict.insert(k, v.contiguous());
  for (const auto& [k, v] : extra) {
    if (dict.contains(k)) throw std::logic_error("save_weights: '" + k + "' is the network's own");
    dict.insert(k, v.detach().cpu().contiguous());
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  const std::string content(bytes.begin(), bytes.end());
  util::write_file_atomic(path, content);
  return util::sha256_hex(content);
}

namespace {

// Throws when the elements of a tensor read from a file do not lie within
// its storage (LibTorch would read past it, or find "not allocated").
void check_within_storage(const torch::Tensor& t) {
  if (t.numel() == 0) return;
  const auto bad = [] { throw std::runtime_error("a tensor's elements lie outside its storage (a damaged size)"); };
  if (!t.has_storage() || !t.storage().data() || t.storage_offset() < 0) bad();
  // The last element's offset, in int64 without overflow: sizes and strides come from the file.
  int64_t last = t.storage_offset(), step = 0, bytes = 0;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.stride(i) < 0 || __builtin_mul_overflow(t.size(i) - 1, t.stride(i), &step) ||
        __builtin_add_overflow(last, step, &last))
      bad();
  if (__builtin_mul_overflow(last + 1, int64_t(t.element_size()), &bytes) || bytes > int64_t(t.storage().nbytes()))
    bad();
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> pickled_tensors(const std::string& data) {
  const c10::IValue v = torch::pickle_load(std::vector<char>(data.begin(), data.end()));
  if (!v.isGenericDict()) throw std::runtime_error("not a dict");
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : v.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor()) throw std::runtime_error("not name -> tensor");
    check_within_storage(item.value().toTensor());
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return out;
}

namespace {

StateDict parse_weights(const std::string& data, const std::string& path) {
  StateDict sd;
  try {
    for (auto& [name, t] : pickled_tensors(data)) sd[name] = t;
  } catch (const std::exception& e) {
    throw std::runtime_error("weights file '" + path +
                             "' is not a deepreduce weights.pt (a pickled dict name -> tensor): " + error_line(e));
  }
  return sd;
}

}  // namespace

StateDict load_weights(const std::string& path) {
  if (!util::file_exists(path)) throw std::runtime_error("weights file '" + path + "' does not exist");
  if (onnx::is_onnx_path(path)) return onnx_state_dict(onnx::read_model(path));
  return parse_weights(util::read_file(path), path);
}

StateDict onnx_state_dict(const onnx::Model& m) {
  StateDict sd;
  for (const auto& [name, t] : m.weights)
    sd[name] = torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat32).clone();
  for (const arch::Layer* l : m.net.layers())
    if (l->op == arch::Op::BatchNorm) sd[l->name + ".num_batches_tracked"] = torch::zeros({}, torch::kInt64);
  return sd;
}

namespace {

// The bytes of a finished run's weights.pt, checked against the SHA-256 its
// result.json records.
std::string run_weights_bytes(const std::string& run_dir, const RunResult& result) {
  const std::string path = util::path_join(run_dir, "weights.pt");
  if (!util::file_exists(path)) throw std::runtime_error("weights file '" + path + "' does not exist");
  std::string data = util::read_file(path);
  if (!result.weights_sha256.empty() && util::sha256_hex(data) != result.weights_sha256)
    throw std::runtime_error("weights file '" + path + "' does not match the checksum in " + run_dir +
                             "/result.json: it is corrupt or was replaced after the run finished");
  return data;
}

}  // namespace

void check_run_weights(const std::string& run_dir, const RunResult& result) {
  const std::string data = run_weights_bytes(run_dir, result);
  // Runs older than the checksum: at least a readable weights file.
  if (result.weights_sha256.empty()) parse_weights(data, util::path_join(run_dir, "weights.pt"));
}

StateDict load_run_weights(const std::string& run_dir) {
  const auto result = finished_result(run_dir);
  return parse_weights(run_weights_bytes(run_dir, result ? *result : RunResult{}), util::path_join(run_dir, "weights.pt"));
}

int load_into(nn::Net& net, const StateDict& weights, bool strict, const std::string& what) {
  torch::NoGradGuard ng;
  int copied = 0;
  auto copy = [&](const std::string& name, torch::Tensor dst) {
    auto it = weights.find(name);
    if (it == weights.end() || it->second.sizes() != dst.sizes()) {
      if (!strict) return;
      std::ostringstream m;
      m << what << " does not fit the network: " << name;
      if (it == weights.end())
        m << " is missing";
      else
        m << " has shape " << it->second.sizes() << ", the network wants " << dst.sizes();
      throw std::runtime_error(m.str());
    }
    dst.copy_(it->second);
    ++copied;
  };
  for (auto& p : net->named_parameters()) copy(p.key(), p.value());
  for (auto& b : net->named_buffers()) copy(b.key(), b.value());
  return copied;
}

namespace {

std::string archive_bytes(const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  torch::serialize::OutputArchive a;
  fill(a);
  std::ostringstream out;
  a.save_to(out);
  return out.str();
}

torch::Tensor bytes_tensor(const std::string& b) {
  return torch::from_blob(const_cast<char*>(b.data()), {static_cast<int64_t>(b.size())}, torch::kUInt8).clone();
}

std::string tensor_bytes(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

// The checksum covers every part a resume depends on.
std::string checkpoint_digest(const std::string& model, const std::string& optim, const std::string& extra,
                              const Checkpoint& m) {
  const std::string epochs = std::to_string(m.epochs_done);
  return util::hex(util::Sha256()
                       .update(model.data(), model.size())
                       .update(optim.data(), optim.size())
                       .update(epochs.data(), epochs.size())
                       .update(m.metrics.data(), m.metrics.size())
                       .update(m.settings.data(), m.settings.size())
                       .update(extra.data(), extra.size())
                       .update(m.state.data(), m.state.size())
                       .final());
}

std::string read_string(torch::serialize::InputArchive& a, const char* key) {
  c10::IValue v;
  a.read(key, v);
  return v.toStringRef();
}

}  // namespace

void save_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt, const Checkpoint& meta) {
  const std::string model = archive_bytes([&](auto& a) { net->save(a); });
  const std::string optim = archive_bytes([&](auto& a) { opt.save(a); });
  const std::string extra = archive_bytes([&](auto& a) {
    for (const auto& [name, t] : meta.tensors) a.write(name, t.detach().cpu().contiguous());
  });
  torch::serialize::OutputArchive archive;
  archive.write("model_bytes", bytes_tensor(model));
  archive.write("optimizer_bytes", bytes_tensor(optim));
  archive.write("epochs_done", c10::IValue(meta.epochs_done));
  archive.write("metrics", c10::IValue(meta.metrics));
  archive.write("settings", c10::IValue(meta.settings));
  archive.write("extra_bytes", bytes_tensor(extra));
  archive.write("state", c10::IValue(meta.state));
  archive.write("digest", c10::IValue(checkpoint_digest(model, optim, extra, meta)));
  std::ostringstream out;
  archive.save_to(out);
  util::write_file_atomic(path, out.str());
}

// Checkpoints written before the checksum (nested model and optimizer
// archives): loaded as they are.
Checkpoint load_legacy_checkpoint(torch::serialize::InputArchive& archive, nn::Net& net,
                                  torch::optim::Optimizer& opt) {
  Checkpoint meta;
  torch::serialize::InputArchive model, optim;
  archive.read("model", model);
  archive.read("optimizer", optim);
  net->load(model);
  opt.load(optim);
  c10::IValue v;
  archive.read("epochs_done", v);
  meta.epochs_done = v.toInt();
  meta.metrics = read_string(archive, "metrics");
  return meta;
}

Checkpoint load_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt,
                           const std::string& settings, const std::map<std::string, torch::Tensor>& tensors) {
  Checkpoint meta;
  std::string model, optim, extra, digest;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor t;
    if (!archive.try_read("model_bytes", t)) return load_legacy_checkpoint(archive, net, opt);
    model = tensor_bytes(t);
    archive.read("optimizer_bytes", t);
    optim = tensor_bytes(t);
    c10::IValue v;
    archive.read("epochs_done", v);
    meta.epochs_done = v.toInt();
    meta.metrics = read_string(archive, "metrics");
    meta.settings = read_string(archive, "settings");
    if (archive.try_read("extra_bytes", t)) {
      extra = tensor_bytes(t);
      meta.state = read_string(archive, "state");
    }
    digest = read_string(archive, "digest");
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "' cannot be read (truncated, or not a deepreduce checkpoint " +
                             "of this version): " + error_line(e));
  }
  if (checkpoint_digest(model, optim, extra, meta) != digest)
    throw std::runtime_error("checkpoint '" + path + "' is corrupt: its checksum does not match its content");
  if (!settings.empty() && !meta.settings.empty()) {
    const std::string diff = first_difference(nlohmann::json::parse(settings), "config.json",
                                              nlohmann::json::parse(meta.settings), path, settings_before_they_existed());
    if (!diff.empty())
      throw std::runtime_error("checkpoint '" + path + "' was made with other settings than its run's config.json (" +
                               diff + "); restore config.json or start a new run");
  }
  try {
    // Onto the network's device: a checkpoint written on a GPU resumes on a
    // CPU and the other way round (without a device LibTorch puts every
    // tensor back where it was saved).
    const auto params = net->parameters();
    const torch::Device dev = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
    torch::serialize::InputArchive m, o, x;
    m.load_from(model.data(), model.size(), dev);
    o.load_from(optim.data(), optim.size(), dev);
    net->load(m);
    opt.load(o);
    if (!tensors.empty()) {
      x.load_from(extra.data(), extra.size());
      torch::NoGradGuard ng;
      for (const auto& [name, dst] : tensors) {
        torch::Tensor src;
        x.read(name, src);
        const_cast<torch::Tensor&>(dst).copy_(src);
        meta.tensors[name] = dst;
      }
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "' does not fit the network of its config.json: " +
                             error_line(e));
  }
  return meta;
}

}  // namespace dr::train
