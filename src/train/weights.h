#pragma once
// Weights and checkpoints on disk.
//  weights.pt     a pickled dict name -> tensor (parameters and buffers, CPU),
//                 the format Python's torch.load reads: a state_dict whose
//                 names are the module paths of the network description.
//  checkpoint.pt  model + optimizer + finished epoch + metrics history + the
//                 settings it was trained with, and a SHA-256 over all of it:
//                 a corrupted checkpoint is refused, never resumed from.
// Both are written atomically (temp file + rename). A finished run's
// result.json records the SHA-256 of its weights.pt (load_run_weights checks it).
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "onnx/reader.h"
#include "nn/net.h"

namespace dr::train {

using StateDict = std::map<std::string, torch::Tensor>;

StateDict state_dict(nn::Net& net);
// Returns the SHA-256 (hex) of the file written. `extra`: more tensors (a
// search's "<site>.poly" coefficients for the network its snapshot becomes),
// none of them the network's own.
std::string save_weights(nn::Net& net, const std::string& path, const StateDict& extra = {});
// Throws std::runtime_error naming the file on a missing, truncated or foreign file.
// An ONNX model (model.onnx) gives its initializers (onnx_state_dict).
StateDict load_weights(const std::string& path);
// An imported model's initializers by the names of nn::Net's parameters and
// buffers (every BatchNorm's num_batches_tracked is 0).
StateDict onnx_state_dict(const onnx::Model& m);
// The weights.pt of a finished run, checked against the SHA-256 its
// result.json records (runs older than the check have none). Throws
// std::runtime_error naming the file when they differ.
StateDict load_run_weights(const std::string& run_dir);
struct RunResult;
// Whether the weights.pt of the finished run `result` (in run_dir) is intact:
// present and matching the SHA-256 result.json records (runs older than the
// checksum: a readable weights file). Throws std::runtime_error naming the file.
void check_run_weights(const std::string& run_dir, const RunResult& result);
// The name -> tensor entries of a pickled dict (torch.save of a dict of
// tensors: weights.pt, masks.pt), in the dict's order. Throws
// std::runtime_error when `data` is not one, or when a tensor's elements do
// not lie within its storage (a damaged size in a pickle makes a tensor
// LibTorch would read past); the loaders name their file.
std::vector<std::pair<std::string, torch::Tensor>> pickled_tensors(const std::string& data);
// Copies every entry into the network. strict: every parameter and buffer of
// the network must be present with the same shape (else std::runtime_error
// naming the first mismatch). Not strict: copies those that match by name
// and shape. Returns how many tensors were copied.
int load_into(nn::Net& net, const StateDict& weights, bool strict, const std::string& what);

struct Checkpoint {
  int64_t epochs_done = 0;
  std::string metrics;   // the metrics history, JSON array text
  std::string settings;  // TrainConfig::result_settings() as JSON text ("" in older checkpoints)
  // More state of a resumable job (the SNL search: its masks and lasso):
  // named tensors (loaded back into the tensors of the same names given to
  // load_checkpoint) and a JSON text.
  std::map<std::string, torch::Tensor> tensors;
  std::string state;
};
void save_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt,
                     const Checkpoint& meta);
// Checks the checksum, then that the checkpoint was made with `settings`
// (the run's config.json; "" skips that check), then loads into net and opt.
// Throws std::runtime_error naming the file: unreadable, corrupt (checksum),
// made with other settings (naming the first one that differs), or not
// fitting the network.
// `tensors`: where the checkpoint's named tensors are copied (each must be
// present with the same shape).
Checkpoint load_checkpoint(const std::string& path, nn::Net& net, torch::optim::Optimizer& opt,
                           const std::string& settings = "",
                           const std::map<std::string, torch::Tensor>& tensors = {});

// One line for a user from any exception: LibTorch's errors without their
// C++ stack trace.
std::string error_line(const std::exception& e);

}  // namespace dr::train
