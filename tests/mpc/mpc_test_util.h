#pragma once
// Helpers shared by the tests of the private runtime: tiny networks, masks,
// images, error expectations, and running the two parties in one process.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "arch/spec.h"
#include "mpc/architecture.h"
#include "mpc/dealer.h"
#include "mpc/model.h"
#include "mpc/party.h"
#include "mpc/reference.h"
#include "test_util.h"

namespace dr::mpc::test {

using dr::test::contains;
using dr::test::ScratchDir;

// The key ledger of every test lives in a scratch state directory, never in
// the user's home; set once for the binary before any test (forked parties
// inherit it). Nonces are fresh per deal, so tests do not see each other's.
struct IsolatedState {
  ScratchDir dir{"mpc-state"};
  IsolatedState() { ::setenv("DEEPREDUCE_STATE_DIR", dir.path.c_str(), 1); }
};
inline IsolatedState isolated_state;

// resnet6 at alpha 0.125 on 1x8x8 with 4 classes: 9 linear layers, 5 ReLU sites.
inline arch::Network tiny_net(const std::string& spec = "resnet6:alpha=0.125", arch::Shape input = {1, 8, 8},
                              int64_t classes = 4) {
  return arch::build_network(spec, arch::InputSpec{input, classes});
}

// Keeps every other element of a ReLU site (pixel-level mask).
inline void mask_half(arch::Network& net, const std::string& layer) {
  for (arch::Layer* l : net.mutable_layers())
    if (l->name == layer) {
      auto m = std::make_shared<arch::ReluMask>();
      m->ops.resize(size_t(l->out.numel()));
      for (size_t i = 0; i < m->ops.size(); ++i) m->ops[i] = i % 2 == 0, m->live += i % 2 == 0;
      l->mask = m;
      return;
    }
  ADD_FAILURE() << "no layer " << layer;
}

// Gives site `layer` a mask cycling through `ops`: element-wise, element i
// computes ops[i % ops.size()]; channel-wise, channel c does.
inline void mask_ops(arch::Network& net, const std::string& layer, const std::vector<arch::SiteOp>& ops,
                     bool channelwise) {
  for (arch::Layer* l : net.mutable_layers())
    if (l->name == layer) {
      auto m = std::make_shared<arch::ReluMask>();
      m->channelwise = channelwise;
      m->ops.resize(size_t(channelwise ? l->out.c : l->out.numel()));
      const int64_t per_entry = channelwise ? l->out.h * l->out.w : 1;
      for (size_t i = 0; i < m->ops.size(); ++i) {
        const arch::SiteOp op = ops[i % ops.size()];
        m->ops[i] = static_cast<uint8_t>(op);
        m->live += op == arch::SiteOp::Relu ? per_entry : 0;
        m->polys += op == arch::SiteOp::Poly ? per_entry : 0;
      }
      l->mask = m;
      return;
    }
  ADD_FAILURE() << "no layer " << layer;
}

// resnet6 with every kind of site: stem.relu plain; layer1.0.relu element-wise
// ReLU, identity and polynomial elements; layer2.0.relu channel-wise
// polynomial and identity channels (no ReLU); layer3.0.relu channel-wise
// ReLU and polynomial channels; layer4.0.relu plain.
inline arch::Network poly_net() {
  using arch::SiteOp;
  arch::Network net = tiny_net();
  mask_ops(net, "layer1.0.relu", {SiteOp::Relu, SiteOp::Identity, SiteOp::Poly}, false);
  mask_ops(net, "layer2.0.relu", {SiteOp::Poly, SiteOp::Identity}, true);
  mask_ops(net, "layer3.0.relu", {SiteOp::Poly, SiteOp::Relu, SiteOp::Relu}, true);
  return net;
}

inline std::vector<float> random_image(const arch::Shape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> x(size_t(s.numel()));
  for (float& v : x) v = u(rng);
  return x;
}

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning: " << needle;
  } catch (const std::exception& e) {
    EXPECT_TRUE(contains(e.what(), needle)) << e.what() << "\n  should mention: " << needle;
  }
}

// The plaintext fixed-point logits of image `seed`.
inline std::vector<int64_t> reference_logits(const arch::Network& net, const FloatModel& m, int f, uint64_t seed,
                                             ReluGateChoice relu_gate = {}) {
  const Program program = compile_program(net, ProgramDetail::Indices, relu_gate);
  return fixed_forward(program, quantise(program, m, f), quantise_input(normalise(net.input, m, random_image(net.input, seed)), f));
}

// How far private logits (scale 2^f) may stray from the fixed-point
// reference: every truncation may add one unit, which later layers amplify.
inline double logit_tolerance(const std::vector<int64_t>& ref) {
  double top = 0;
  for (int64_t v : ref) top = std::max(top, std::fabs(double(v)));
  return std::max(64.0, 0.005 * top);
}

inline DealReport deal_keys(const arch::Network& net, const std::string& dir, uint64_t count, int f = 12,
                            ReluGateChoice relu_gate = {}) {
  DealOptions o;
  o.out_dir = dir;
  o.count = count;
  o.frac_bits = f;
  Architecture a = architecture_of(net);
  a.relu_gate = relu_gate;
  return deal(a, o);
}

// Client options whose image i is random_image(input, 100 + i), label i.
inline ClientOptions client_options(const std::string& key, const arch::Shape& input, int64_t count) {
  ClientOptions o;
  o.key_path = key;
  o.count = count;
  o.image = [input](int64_t i) { return ClientImage{random_image(input, 100 + uint64_t(i)), i}; };
  return o;
}

// Runs server and client sessions on the two ends of a socketpair, the
// server on a thread of its own. Errors come back as messages ("" = none).
struct InProcess {
  ServerReport server;
  ClientReport client;
  std::string server_error, client_error;
};
inline InProcess run_in_process(const FloatModel& model, const ServerOptions& so, const ClientOptions& co,
                                double timeout_s = 10) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair failed");
  TransportOptions to;
  to.timeout_s = timeout_s;
  auto ts = std::make_unique<Transport>(fds[0], to);
  auto tc = std::make_unique<Transport>(fds[1], to);
  InProcess r;
  std::thread server([&] {
    try {
      r.server = serve_session(*ts, model, so);
    } catch (const std::exception& e) {
      r.server_error = e.what();
    }
  });
  try {
    r.client = client_session(*tc, co);
  } catch (const std::exception& e) {
    r.client_error = e.what();
  }
  tc.reset();  // a failed client closes its end, so the server cannot wait on it
  server.join();
  return r;
}

}  // namespace dr::mpc::test
