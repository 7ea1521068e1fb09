#pragma once
// Weights and checkpoints on disk.
//  weights.pt     a pickled dict name -> tensor (parameters and buffers, CPU),
//                 the format Python's torch.load reads: a state_dict whose
//                 names are the module paths of the network description.
//  checkpoint.pt  model + optimizer + finished epoch + metrics history, for resume.
// Both are written atomically (temp file + rename).
#include <torch/torch.h>

#include <map>
#include <string>

#include "nn/net.h"

namespace dr::train {

using StateDict = std::map<std::string, torch::Tensor>;

StateDict state_dict(nn::Net& net);
void save_weights(nn::Net& net, const std::string& path);
// Throws std::runtime_error naming the file on a missing, truncated or foreign file.
StateDict load_weights(const std::string& path);
// Copies every entry into the network. strict: every parameter and buffer of
// the network must be present with the same shape (else std::runtime_error
// naming the first mismatch). Not strict: copies those that match by name
// and shape. Returns how many tensors were copied.
int load_into(nn::Net& net, const StateDict& weights, bool strict, const std::string& what);

struct Checkpoint {
  int64_t epochs_done = 0;
  std::string metrics;  // the metrics history, JSON array text
};
void save_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt,
                     const Checkpoint& meta);
// Loads into net and opt; throws std::runtime_error naming the file if it is unreadable.
Checkpoint load_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt);

}  // namespace dr::train
