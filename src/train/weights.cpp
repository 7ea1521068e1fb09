#include "train/weights.h"

#include <sstream>

#include "util/fs.h"

namespace dr::train {

StateDict state_dict(nn::Net& net) {
  StateDict sd;
  for (const auto& p : net->named_parameters()) sd[p.key()] = p.value().detach().to(torch::kCPU);
  for (const auto& b : net->named_buffers()) sd[b.key()] = b.value().detach().to(torch::kCPU);
  return sd;
}

void save_weights(nn::Net& net, const std::string& path) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [k, v] : state_dict(net)) dict.insert(k, v.contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  util::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

StateDict load_weights(const std::string& path) {
  if (!util::file_exists(path)) throw std::runtime_error("weights file '" + path + "' does not exist");
  const std::string data = util::read_file(path);
  StateDict sd;
  try {
    const c10::IValue v = torch::pickle_load(std::vector<char>(data.begin(), data.end()));
    if (!v.isGenericDict()) throw std::runtime_error("not a dict");
    for (const auto& item : v.toGenericDict()) {
      if (!item.key().isString() || !item.value().isTensor()) throw std::runtime_error("not name -> tensor");
      sd[item.key().toStringRef()] = item.value().toTensor();
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("weights file '" + path +
                             "' is not a deepreduce weights.pt (a pickled dict name -> tensor): " +
                             std::string(e.what()).substr(0, 200));
  }
  return sd;
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

void save_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt,
                     const Checkpoint& meta) {
  torch::serialize::OutputArchive archive, model, optim;
  net->save(model);
  opt.save(optim);
  archive.write("model", model);
  archive.write("optimizer", optim);
  archive.write("epochs_done", c10::IValue(meta.epochs_done));
  archive.write("metrics", c10::IValue(meta.metrics));
  std::ostringstream out;
  archive.save_to(out);
  util::write_file_atomic(path, out.str());
}

Checkpoint load_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt) {
  Checkpoint meta;
  try {
    torch::serialize::InputArchive archive, model, optim;
    archive.load_from(path);
    archive.read("model", model);
    archive.read("optimizer", optim);
    net->load(model);
    opt.load(optim);
    c10::IValue v;
    archive.read("epochs_done", v);
    meta.epochs_done = v.toInt();
    archive.read("metrics", v);
    meta.metrics = v.toStringRef();
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "' cannot be read (truncated or not a deepreduce checkpoint): " +
                             std::string(e.what()).substr(0, 200));
  }
  return meta;
}

}  // namespace dr::train
