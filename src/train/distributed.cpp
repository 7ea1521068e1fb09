// Data-parallel training with c10d: a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it), then a Gloo process group, or
// NCCL for CUDA tensors. Which of the two this build has is decided by
// CMakeLists.txt (DEEPREDUCE_WITH_GLOO: LibTorch ships Gloo's headers;
// DEEPREDUCE_WITH_NCCL: LibTorch has NCCL and the CUDA toolkit is found).
// Each collective works on one flat buffer per dtype, and every c10d failure
// becomes a runtime_error that says which rank lost contact, so a dead rank
// stops the others instead of hanging them.
//
// LibTorch 1.13 and 2.x differ here in one place: from 2.0 the Gloo and NCCL
// groups are c10d::Backend objects (a c10d::ProcessGroup wraps them in
// Python); before, they were c10d::ProcessGroup themselves. Both have the
// broadcast and allreduce used here.

#include "train/distributed.h"

#include <torch/version.h>

#include "train/config.h"
#include "train/trainer.h"

#if DEEPREDUCE_WITH_GLOO
// ProcessGroupGloo.hpp declares the Gloo group only under this macro (the
// LibTorch build defines it; its installed headers do not).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#if DEEPREDUCE_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>

namespace dr::train {

namespace {

using std::chrono::milliseconds;

#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

std::string backends_text() {
  const auto b = Distributed::backends();
  std::string s = b.empty() ? "none" : b.front();
  for (size_t i = 1; i < b.size(); ++i) s += ", " + b[i];
  return "built with: " + s + "; Gloo needs LibTorch's Gloo headers when deepreduce is built (Debian: libgloo-dev), "
         "NCCL a LibTorch with NCCL and the CUDA toolkit";
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

// An integer environment variable in [lo, hi]; the message names the variable.
int64_t env_int(const char* name, const std::string& v, int64_t lo, int64_t hi, const std::string& meaning) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (errno || end == v.c_str() || *end != '\0' || x < lo || x > hi)
    throw std::invalid_argument("data-parallel training: " + std::string(name) + "='" + v + "' is not " + meaning +
                             " (an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "])");
  return x;
}

std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

class ProcessGroup final : public Distributed {
 public:
  ProcessGroup(int rank, int world, const std::string& addr, uint16_t port, milliseconds timeout, bool cuda,
               bool sync_bn)
      : rank_(rank), world_(world), timeout_(timeout), sync_bn_(sync_bn) {
    // One deadline for the whole rendezvous: the store, the join, Gloo's connection.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string where = addr + ":" + std::to_string(port);
    const std::string secs = std::to_string(timeout.count() / 1000) + " s";
    try {
      c10d::TCPStoreOptions so;
      so.port = port;
      so.isServer = rank == 0;
      so.numWorkers = static_cast<size_t>(world);
      so.waitWorkers = false;  // join() waits, within the one deadline
      so.timeout = timeout;
      store_ = c10::make_intrusive<c10d::TCPStore>(addr, so);
      join(deadline);
    } catch (const std::exception& e) {
      throw std::runtime_error("data-parallel training: rank " + std::to_string(rank) +
                               (rank == 0 ? " could not serve the rendezvous on port " + std::to_string(port)
                                          : " could not reach the rendezvous at " + where) +
                               " or not every one of the " + std::to_string(world) + " ranks (WORLD_SIZE) joined within " +
                               secs + " (DEEPREDUCE_DIST_TIMEOUT): " + message_of(e));
    }
    try {
#if DEEPREDUCE_WITH_NCCL
      if (cuda) {
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = timeout;
        pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(store_, rank, world, o);
        backend_ = "nccl";
      }
#endif
#if DEEPREDUCE_WITH_GLOO
      if (!pg_) {
        auto o = c10d::ProcessGroupGloo::Options::create(timeout);
        if (auto ifname = env("GLOO_SOCKET_IFNAME"))
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
        else
          o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        o->threads = 2;
        pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, rank, world, o);
        backend_ = "gloo";
      }
#endif
      if (!pg_) throw std::logic_error("no c10d backend (" + backends_text() + ")");
    } catch (const std::exception& e) {
      throw std::runtime_error("data-parallel training: rank " + std::to_string(rank) +
                               " could not connect to the other ranks (rendezvous " + where + ", timeout " + secs +
                               ", DEEPREDUCE_DIST_TIMEOUT): " + message_of(e));
    }
    comm_device_ = cuda && backend_ == "nccl" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
    if (rank == 0)
      std::cerr << "data-parallel: " << world << " ranks, " << backend_ << ", rendezvous " << where
                << ", BatchNorm statistics " << (sync_bn ? "over the global batch" : "per rank")
                << ", timeout " << secs << "\n";
  }

  ~ProcessGroup() override {
    // After a failure a Gloo worker may still wait on a dead peer: leak the
    // group rather than join its threads, so the process can exit.
    if (broken_) {
      (void)pg_.release();
      (void)store_.release();
    }
  }

  void check_same_settings(const nlohmann::json& settings) override {
    std::string diff;
    try {
      diff = compare_settings(settings);
    } catch (const std::exception& e) {
      broken_ = true;
      throw std::runtime_error("data-parallel training: rank " + std::to_string(rank_) +
                               " lost contact with the others while comparing the ranks' settings (timeout " +
                               std::to_string(timeout_.count() / 1000) + " s, DEEPREDUCE_DIST_TIMEOUT): " +
                               message_of(e));
    }
    if (!diff.empty())
      throw std::invalid_argument("data-parallel training: the ranks were started with different settings (" + diff +
                                  "); start every rank with the same command");
  }

  // The first difference of this rank's settings with the others' ("" = none).
  // Each comparison has keys of its own: a process may train several times
  // (linearize: the search, then each fine-tune), and every rank compares in
  // the same order.
  std::string compare_settings(const nlohmann::json& settings) {
    const std::string round = std::to_string(comparisons_++);
    const std::string settings_key = "settings/" + round, checked_key = "checked/" + round;
    const std::string mine = settings.dump();
    store_->set(key(settings_key, rank_), std::vector<uint8_t>(mine.begin(), mine.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < world_; ++r) keys.push_back(key(settings_key, r));
    store_->wait(keys, timeout_);
    // Rank 0 compares every rank with its own; every other rank itself with rank 0.
    std::string diff;
    for (int r = 0; r < world_ && diff.empty(); ++r) {
      if (r == rank_ || (rank_ != 0 && r != 0)) continue;
      const auto theirs = store_->get(key(settings_key, r));
      const auto other = nlohmann::json::parse(std::string(theirs.begin(), theirs.end()));
      const int a = std::min(rank_, r), b = std::max(rank_, r);
      diff = first_difference(a == rank_ ? settings : other, "rank " + std::to_string(a), a == rank_ ? other : settings,
                              "rank " + std::to_string(b));
    }
    // Everyone has compared before anyone stops (rank 0 serves the store).
    store_->set(key(checked_key, rank_), std::vector<uint8_t>{1});
    std::vector<std::string> checked;
    for (int r = 0; r < world_; ++r) checked.push_back(key(checked_key, r));
    store_->wait(checked, timeout_);
    return diff;
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void broadcast_parameters(nn::Net& net) override {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> tensors;
    for (auto& p : net->parameters()) tensors.push_back(p);
    for (auto& b : net->buffers()) tensors.push_back(b);
    for (auto& group : by_type(tensors)) {
      torch::Tensor flat = pack(group.second);
      std::vector<torch::Tensor> v{flat};
      c10d::BroadcastOptions o;
      o.rootRank = 0;
      collective("the broadcast of rank 0's weights", [&] { return pg_->broadcast(v, o); });
      unpack(flat, group.second);
    }
  }

  void sync_batch_norm(nn::Net& net) override {
    if (!sync_bn_) return;
    net->set_batch_norm_sync([this](torch::Tensor& t) { all_reduce(t, "a BatchNorm statistics sum"); });
  }

  void average_gradients(const std::vector<torch::Tensor>& params) override {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> grads;
    for (auto p : params) {
      // Every parameter we train gets a gradient; a missing one counts as
      // zero so that all ranks reduce buffers of the same size.
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      grads.push_back(p.grad());
    }
    for (auto& group : by_type(grads)) {
      auto& flat = grad_buffers_[group.first];
      flat = pack(group.second, flat);
      all_reduce(flat, "the gradient all-reduce");
      flat.div_(world_);
      unpack(flat, group.second);
    }
  }

  double sum(double v) override {
    torch::Tensor t = torch::full({1}, v, torch::TensorOptions().dtype(torch::kFloat64).device(comm_device_));
    all_reduce(t, "a sum of epoch statistics");
    return t.item<double>();
  }

  void barrier() override {
    // A one-element all-reduce: a barrier with the same failure handling.
    sum(0.0);
  }

 private:
  using Key = std::pair<int, std::string>;  // dtype, device

  static std::map<Key, std::vector<torch::Tensor>> by_type(const std::vector<torch::Tensor>& ts) {
    std::map<Key, std::vector<torch::Tensor>> m;
    for (const auto& t : ts) m[{static_cast<int>(t.scalar_type()), t.device().str()}].push_back(t);
    return m;
  }

  // One contiguous buffer holding every tensor of the group (reusing `buf`
  // when its size fits), on the device the backend reduces on.
  torch::Tensor pack(const std::vector<torch::Tensor>& ts, torch::Tensor buf = {}) const {
    int64_t n = 0;
    for (const auto& t : ts) n += t.numel();
    const auto opts = ts.front().options().device(comm_device_);
    if (!buf.defined() || buf.numel() != n || buf.scalar_type() != opts.dtype().toScalarType() ||
        buf.device() != comm_device_)
      buf = torch::empty({n}, opts);
    int64_t off = 0;
    for (const auto& t : ts) {
      buf.narrow(0, off, t.numel()).view(t.sizes()).copy_(t);
      off += t.numel();
    }
    return buf;
  }

  static void unpack(const torch::Tensor& buf, std::vector<torch::Tensor>& ts) {
    int64_t off = 0;
    for (auto& t : ts) {
      t.copy_(buf.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }

  void all_reduce(torch::Tensor& t, const char* what) {
    std::vector<torch::Tensor> v{t};
    collective(what, [&] { return pg_->allreduce(v); });
  }

  void collective(const char* what, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    if (broken_)
      throw std::runtime_error("data-parallel training: rank " + std::to_string(rank_) +
                               " already lost contact with the others");
    try {
      auto work = start();
      work->wait(timeout_);
    } catch (const std::exception& e) {
      broken_ = true;
      throw std::runtime_error("data-parallel training: rank " + std::to_string(rank_) +
                               " lost contact with the others during " + what +
                               ": another rank has probably died, been killed or hung (see its own log). No reply "
                               "within " + std::to_string(timeout_.count() / 1000) +
                               " s (DEEPREDUCE_DIST_TIMEOUT) or a closed connection. Cause: " + message_of(e));
    }
  }

  static std::string key(const std::string& what, int rank) {
    return "deepreduce/" + what + "/" + std::to_string(rank);
  }

  // Every rank says it is here and waits for the others until `deadline`
  // (the store alone returns when its own wait ends, joined or not).
  void join(std::chrono::steady_clock::time_point deadline) {
    store_->set(key("joined", rank_), std::vector<uint8_t>{1});
    std::vector<std::string> keys;
    for (int r = 0; r < world_; ++r) keys.push_back(key("joined", r));
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    store_->wait(keys, std::max(left, milliseconds(1)));
  }

  int rank_, world_;
  milliseconds timeout_;
  bool sync_bn_;
  bool broken_ = false;
  int64_t comparisons_ = 0;  // check_same_settings calls so far
  std::string backend_;
  torch::Device comm_device_{torch::kCPU};
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Collectives> pg_;
  std::map<Key, torch::Tensor> grad_buffers_;
};

}  // namespace

std::unique_ptr<Distributed> Distributed::from_env(const std::string& device) {
  const auto world_s = env("WORLD_SIZE");
  if (!world_s) return nullptr;
  const int world = static_cast<int>(env_int("WORLD_SIZE", *world_s, 1, 1 << 20, "a number of processes"));
  if (world == 1) {
    // One process: RANK, when set, must still be a rank of it (RANK=7 is a mistake, not rank 0).
    if (auto v = env("RANK")) env_int("RANK", *v, 0, 0, "a rank below WORLD_SIZE=1");
    if (auto v = env("LOCAL_RANK")) env_int("LOCAL_RANK", *v, 0, 0, "a rank on this node below WORLD_SIZE=1");
    return nullptr;
  }
  const auto need = [](const char* name, const std::string& what) {
    auto v = env(name);
    if (!v)
      throw std::invalid_argument("data-parallel training: WORLD_SIZE > 1 but " + std::string(name) +
                               " is not set (" + what + ")");
    return *v;
  };
  const int rank = static_cast<int>(
      env_int("RANK", need("RANK", "this process's rank, 0 .. WORLD_SIZE-1"), 0, world - 1, "a rank below WORLD_SIZE"));
  const std::string addr = need("MASTER_ADDR", "the host name or address of rank 0");
  const auto port = static_cast<uint16_t>(
      env_int("MASTER_PORT", need("MASTER_PORT", "a free TCP port on rank 0's host"), 1, 65535, "a TCP port"));
  int local_rank = 0;
  if (auto v = env("LOCAL_RANK"))
    local_rank = static_cast<int>(env_int("LOCAL_RANK", *v, 0, world - 1, "a rank on this node below WORLD_SIZE"));
  int64_t timeout_s = 60;
  if (auto v = env("DEEPREDUCE_DIST_TIMEOUT"))
    timeout_s = env_int("DEEPREDUCE_DIST_TIMEOUT", *v, 1, 7 * 24 * 3600, "a timeout in seconds");
  bool sync_bn = true;
  if (auto v = env("DEEPREDUCE_SYNC_BN")) {
    if (*v != "0" && *v != "1")
      throw std::invalid_argument("data-parallel training: DEEPREDUCE_SYNC_BN='" + *v + "' is not 0 or 1");
    sync_bn = *v == "1";
  }
  const bool cuda = resolve_device(device).is_cuda();
#if DEEPREDUCE_WITH_NCCL
  // One GPU per process on a node: LOCAL_RANK picks it.
  if (cuda) c10::cuda::set_device(static_cast<c10::DeviceIndex>(local_rank % torch::cuda::device_count()));
#else
  (void)local_rank;
#endif
  // Gloo reduces CPU buffers, for CUDA training too; NCCL CUDA ones.
  const auto b = backends();
  const auto has = [&](const char* name) { return std::find(b.begin(), b.end(), name) != b.end(); };
  if (!has("gloo") && !(cuda && has("nccl")))
    throw std::invalid_argument("data-parallel training (WORLD_SIZE=" + std::to_string(world) +
                                "): this build of deepreduce has no c10d backend for " +
                                (cuda ? "CUDA" : "CPU") + " tensors (" + backends_text() + ")");
  return std::make_unique<ProcessGroup>(rank, world, addr, port, std::chrono::seconds(timeout_s), cuda, sync_bn);
}

std::vector<std::string> Distributed::backends() {
  std::vector<std::string> b;
#if DEEPREDUCE_WITH_GLOO
  b.push_back("gloo");
#endif
#if DEEPREDUCE_WITH_NCCL
  b.push_back("nccl");
#endif
  return b;
}

}  // namespace dr::train
