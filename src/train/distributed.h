#pragma once
// Data-parallel training over several processes with LibTorch's c10d (Gloo on
// CPU, NCCL when the LibTorch has CUDA). Configured by the usual environment
// variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK, so the same
// command runs under torchrun-style launchers or Slurm's srun. Optional:
// DEEPREDUCE_DIST_TIMEOUT (seconds, default 60): how long a rank waits for the
// others (rendezvous, each collective) before failing; DEEPREDUCE_SYNC_BN=0;
// GLOO_SOCKET_IFNAME (the network interface Gloo uses).
//
// Every failure of a collective (a rank died, hung or was killed) becomes a
// std::runtime_error "data-parallel training: rank R lost contact with the
// others ..." instead of a hang.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "nn/net.h"

namespace dr::train {

class Distributed {
 public:
  // nullptr when WORLD_SIZE is unset or 1 (one process). Throws
  // std::runtime_error naming the variable when the environment is
  // inconsistent or the rendezvous fails or times out.
  static std::unique_ptr<Distributed> from_env(const std::string& device);
  // The c10d backends this build has: "gloo" (CPU; CUDA tensors too when
  // there is no "nccl"), "nccl" (CUDA). Empty when LibTorch's Gloo headers
  // were missing at build time and NCCL was not built (CMakeLists.txt).
  static std::vector<std::string> backends();
  virtual ~Distributed() = default;

  // Stops every rank (std::invalid_argument naming the first setting that
  // differs between ranks) unless all were started with the same settings
  // (TrainConfig::result_settings). Uses the rendezvous store, not the
  // collectives, so mismatched ranks stop cleanly.
  virtual void check_same_settings(const nlohmann::json& settings) = 0;

  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Rank 0's parameters and buffers to every rank.
  virtual void broadcast_parameters(nn::Net& net) = 0;
  // Training-mode BatchNorm layers of `net` normalise with the statistics of
  // the global batch (NetImpl::set_batch_norm_sync), so data-parallel training
  // matches one process with the same global batch. A no-op when the
  // environment sets DEEPREDUCE_SYNC_BN=0 (per-rank statistics, as plain
  // PyTorch DDP does). See docs/distributed.md.
  virtual void sync_batch_norm(nn::Net& net) = 0;
  // The gradient of each of `params` (what the optimiser steps: the
  // network's parameters and a method's own, e.g. SNL's masks) replaced by
  // its mean over the ranks. The engine scales each rank's loss by (its share
  // of the global batch) x world, so this mean is the gradient of the global
  // batch's mean loss even when the last batch is cut unevenly.
  virtual void average_gradients(const std::vector<torch::Tensor>& params) = 0;
  virtual double sum(double v) = 0;
  virtual void barrier() = 0;
};

}  // namespace dr::train
