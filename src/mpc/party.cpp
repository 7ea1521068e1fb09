#include "mpc/party.h"

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "mpc/gate.h"
#include "mpc/keys.h"
#include "mpc/ledger.h"
#include "mpc/linear.h"
#include "mpc/protocol.h"
#include "mpc/reference.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "shares travel as raw little-endian uint64 arrays; add byte swapping for this platform");

namespace dr::mpc {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<uint8_t> to_bytes(const u64* v, size_t n) {
  std::vector<uint8_t> b(n * sizeof(u64));
  if (n) std::memcpy(b.data(), v, b.size());
  return b;
}
std::vector<u64> to_words(const std::vector<uint8_t>& b, size_t at, size_t n) {
  std::vector<u64> v(n);
  if (n) std::memcpy(v.data(), b.data() + at, n * sizeof(u64));
  return v;
}

LayerRecord traffic_record(const Traffic& d) {
  LayerRecord r;
  r.bytes_sent = d.payload_sent;
  r.bytes_received = d.payload_received;
  r.framing_sent = d.framing_sent;
  r.framing_received = d.framing_received;
  r.rounds = d.rounds;
  r.wait_s = d.wait_s;
  return r;
}

// --- handshake -----------------------------------------------------------------

// The magic's last byte is the online protocol's version: 2 since a site's
// polynomial shares travel in the ReLU step's first message
// (Step::opens_with_next), 3 since the client names a batch size.
constexpr char kHelloMagic[8] = {'D', 'R', 'H', 'E', 'L', 'L', 'O', '3'};
constexpr size_t kHelloBytes = 96;

struct Hello {
  uint32_t key_version = 0;  // the key file's format version
  Party party = Party::Server;
  int l = kRingBits, f = 0;
  Nonce nonce{};
  Hash hash{};
  uint64_t count = 0, next_unused = 0, requested = 0;
  uint64_t batch = 1;  // client: inferences per batch (the server's hello: 0)
};

std::vector<uint8_t> encode(const Hello& h) {
  std::vector<uint8_t> b(kHelloBytes);
  std::memcpy(b.data(), kHelloMagic, 8);
  std::memcpy(b.data() + 8, &h.key_version, 4);
  b[12] = static_cast<uint8_t>(h.party);
  b[13] = static_cast<uint8_t>(h.l);
  b[14] = static_cast<uint8_t>(h.f);
  std::memcpy(b.data() + 16, h.nonce.data(), 16);
  std::memcpy(b.data() + 32, h.hash.data(), 32);
  const uint64_t tail[4] = {h.count, h.next_unused, h.requested, h.batch};
  std::memcpy(b.data() + 64, tail, 32);
  return b;
}

Hello decode_hello(const std::vector<uint8_t>& b) {
  if (b.size() < 8 || std::memcmp(b.data(), kHelloMagic, 7) != 0)
    throw std::runtime_error("handshake refused: the peer's hello is not a deepreduce private-inference hello");
  if (b[7] != uint8_t(kHelloMagic[7]))
    throw std::runtime_error(std::string("handshake refused: the peer speaks online protocol version ") + char(b[7]) +
                             ", this party " + kHelloMagic[7] + ": run both parties from the same deepreduce release");
  if (b.size() != kHelloBytes)
    throw std::runtime_error("handshake refused: the peer's hello has " + std::to_string(b.size()) + " bytes, not " +
                             std::to_string(kHelloBytes));
  Hello h;
  std::memcpy(&h.key_version, b.data() + 8, 4);
  h.party = static_cast<Party>(b[12]);
  h.l = b[13];
  h.f = b[14];
  std::memcpy(h.nonce.data(), b.data() + 16, 16);
  std::memcpy(h.hash.data(), b.data() + 32, 32);
  uint64_t tail[4];
  std::memcpy(tail, b.data() + 64, 32);
  h.count = tail[0], h.next_unused = tail[1], h.requested = tail[2], h.batch = tail[3];
  return h;
}

// Refuses any mismatch; returns the first key block both may use (the later
// of the two "next unused": a block one party already used is skipped by both).
uint64_t check_hello(const Hello& me, const Hello& peer, const std::string& key_path) {
  const std::string me_name = party_name(me.party), peer_name = me.party == Party::Server ? "client" : "server";
  auto refuse = [&](const std::string& why) {
    throw std::runtime_error("handshake refused by the " + me_name + " (" + key_path + "): " + why);
  };
  if (peer.key_version != me.key_version)
    refuse("the " + peer_name + " uses key format " + std::to_string(peer.key_version) + ", this party " +
           std::to_string(me.key_version));
  if (peer.party == me.party) refuse("both parties hold " + me_name + " keys");
  if (peer.l != me.l || peer.f != me.f)
    refuse("ring/fixed point differ: this party l = " + std::to_string(me.l) + ", f = " + std::to_string(me.f) +
           "; the " + peer_name + " l = " + std::to_string(peer.l) + ", f = " + std::to_string(peer.f));
  if (peer.hash != me.hash)
    refuse("model hash differs (this party " + hex(me.hash).substr(0, 16) + ", the " + peer_name + " " +
           hex(peer.hash).substr(0, 16) + "): the key files were dealt for different architectures");
  if (peer.nonce != me.nonce || peer.count != me.count)
    refuse("the key files come from different deals (nonce " + hex(me.nonce) + " vs " + hex(peer.nonce) +
           "): use a server.key and client.key written together");
  const uint64_t start = std::max(me.next_unused, peer.next_unused);
  const uint64_t requested = me.party == Party::Client ? me.requested : peer.requested;
  const uint64_t batch = me.party == Party::Client ? me.batch : peer.batch;
  if (me.party == Party::Server && (batch < 1 || batch > kMaxBatch))
    refuse("the client asks for batches of " + std::to_string(batch) + " inferences; accepted: 1 to " +
           std::to_string(kMaxBatch));
  const uint64_t left = me.count - std::min(start, me.count);
  if (requested > left) {
    const std::string used =
        start == 0 ? "" : " (blocks 0 to " + std::to_string(start - 1) + " are spent: the " + me_name +
                              "'s ledger says next unused " + std::to_string(me.next_unused) + ", the " + peer_name +
                              "'s " + std::to_string(peer.next_unused) + "; a key block must never be used twice, "
                              "whatever its file is called or where it was copied)";
    refuse("the client asks for " + std::to_string(requested) + " inferences but only " + std::to_string(left) +
           " of " + std::to_string(me.count) + " key blocks are unused" + used + ": deal new keys");
  }
  return start;
}

// --- one party's evaluation of the program ---------------------------------------

class Engine {
 public:
  Engine(Party role, Program program, int frac_bits, int threads)
      : role_(role), program_(std::move(program)), f_(frac_bits), threads_(std::max(1, threads)),
        layout_(block_layout(program_, role)), records_(program_.steps.size()) {
    for (size_t i = 0; i < program_.steps.size(); ++i) {
      const Step& s = program_.steps[i];
      records_[i].name = s.name;
      records_[i].kind = kind_name(s);
    }
  }
  const Program& program() const { return program_; }
  const std::vector<LayerRecord>& records() const { return records_; }

  // Server: W, B and W^ = W + A from the global key section's weight masks;
  // each gate step's parameters and setup words from its session words there.
  void set_weights(const QuantModel& q, const std::vector<uint8_t>& global) {
    size_t at = 0;
    for (size_t j = 0; j < q.layers.size(); ++j) {
      const auto& l = q.layers[j];
      w_.emplace_back(l.w.begin(), l.w.end());
      bias_.emplace_back(l.b.begin(), l.b.end());
      std::vector<u64> a = to_words(global, at, l.w.size());
      at += 8 * l.w.size();
      for (size_t i = 0; i < a.size(); ++i) a[i] += w_.back()[i];
      w_hat_.push_back(std::move(a));
    }
    for (size_t g = 0; g < program_.gate_steps.size(); ++g) {
      const Step& s = program_.gate_step(int(g));
      const std::vector<u64> session = to_words(global, at, size_t(gate_of(s).session_words(s)));
      at += 8 * session.size();
      gate_words_.emplace_back(q.gates.at(g).begin(), q.gates.at(g).end());
      gate_setup_.push_back(gate_of(s).setup(s, q.gates.at(g), session.data()));
    }
  }

  // Server -> client: normalisation (count, means, stds as doubles), then
  // every W^, then every gate step's setup words.
  std::vector<uint8_t> setup_payload(const std::vector<double>& mean, const std::vector<double>& std) const {
    std::vector<uint8_t> b(8 + 16 * mean.size());
    const uint64_t n = mean.size();
    std::memcpy(b.data(), &n, 8);
    std::memcpy(b.data() + 8, mean.data(), 8 * n);
    std::memcpy(b.data() + 8 + 8 * n, std.data(), 8 * n);
    for (const auto* list : {&w_hat_, &gate_setup_})
      for (const auto& w : *list) {
        const auto wb = to_bytes(w.data(), w.size());
        b.insert(b.end(), wb.begin(), wb.end());
      }
    return b;
  }

  void read_setup(const std::vector<uint8_t>& b) {
    uint64_t n = 0;
    if (b.size() >= 8) std::memcpy(&n, b.data(), 8);
    size_t want = 8 + 16 * n;
    for (int i : program_.linear_steps) want += 8 * size_t(program_.steps[size_t(i)].geom.weight_numel());
    for (int g = 0; g < int(program_.gate_steps.size()); ++g) want += 8 * setup_words(g);
    if (b.size() < 8 || (n != 0 && int64_t(n) != program_.input.c) || b.size() != want)
      throw std::runtime_error("protocol error: the server's setup message does not fit this architecture");
    mean_.resize(n);
    std_.resize(n);
    std::memcpy(mean_.data(), b.data() + 8, 8 * n);
    std::memcpy(std_.data(), b.data() + 8 + 8 * n, 8 * n);
    size_t at = 8 + 16 * n;
    for (int i : program_.linear_steps) {
      const size_t k = size_t(program_.steps[size_t(i)].geom.weight_numel());
      w_hat_.push_back(to_words(b, at, k));
      at += 8 * k;
    }
    for (int g = 0; g < int(program_.gate_steps.size()); ++g) {  // the client's gates evaluate with these
      gate_words_.push_back(to_words(b, at, setup_words(g)));
      at += 8 * setup_words(g);
    }
  }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& stdev() const { return std_; }

  // A batch of `lanes` inferences run together (--batch): every wire holds
  // the lanes' values one image after another, and each message carries
  // every lane's shares, so a batch takes one image's rounds.
  void begin_batch(int lanes) {
    lanes_.assign(size_t(lanes), Lane{});
    if (lanes == 1) return;  // one lane reads its gate keys from its block
    gate_keys_.resize(program_.gate_steps.size());
    for (size_t g = 0; g < gate_keys_.size(); ++g) gate_keys_[g].resize(size_t(lanes) * gate_key_bytes(g));
  }

  // The input-independent part of inference `lane` of the batch, from its
  // key block. A batch of several copies each gate step's keys next to the
  // other lanes' (what a gate evaluates in one call) and lets the block go.
  void preprocess(int lane, std::vector<uint8_t> block) {
    Lane& L = lanes_[size_t(lane)];
    if (role_ == Party::Server) {
      for (size_t j = 0; j < program_.linear_steps.size(); ++j) {
        const ConvGeom& g = program_.linear(int(j)).geom;
        const auto& part = layout_.linear[j];
        const auto u = to_words(block, part.u, size_t(g.in_numel()));
        const auto k = to_words(block, part.k, size_t(g.out_numel()));
        L.pre.push_back(linear_pre_server(g, w_hat_[j].data(), u.data(), k.data(), bias_[j].data(), threads_));
        L.m.push_back(to_words(block, part.m, size_t(g.out_numel())));
      }
    } else {
      Seed seed;
      std::memcpy(seed.data(), block.data() + layout_.seed, seed.size());
      auto shares = derive_client_shares(program_, seed);
      for (size_t j = 0; j < shares.size(); ++j) {
        const ConvGeom& g = program_.linear(int(j)).geom;
        L.pre.push_back(linear_pre_client(g, w_hat_[j].data(), shares[j].u.data(), shares[j].k.data(), threads_));
        L.m.push_back(std::move(shares[j].m));
      }
      L.input_mask = to_words(block, layout_.input_mask, size_t(program_.input_numel()));
      L.output_mask = to_words(block, layout_.output_mask, size_t(program_.wire_numel[size_t(program_.output_wire)]));
    }
    if (lanes_.size() == 1) {
      block_ = std::move(block);
      return;
    }
    for (size_t g = 0; g < gate_keys_.size(); ++g) {
      const size_t bytes = gate_key_bytes(g);
      if (bytes) std::memcpy(gate_keys_[g].data() + size_t(lane) * bytes, block.data() + layout_.gates[g], bytes);
    }
  }

  // The online protocol of the batch. Client: `x` holds each lane's
  // quantised input; returns each lane's logits (scale f). Server: x is
  // null; returns nothing.
  std::vector<std::vector<int64_t>> online(Transport& t, const std::vector<std::vector<int64_t>>* x) {
    std::vector<std::vector<u64>> w(program_.wire_numel.size());
    std::vector<std::vector<int64_t>> logits(lanes_.size());
    for (size_t i = 0; i < program_.steps.size(); ++i) {
      const Step& s = program_.steps[i];
      const Traffic before = t.traffic();
      const auto t0 = Clock::now();
      switch (s.kind) {
        case StepKind::Input: w[size_t(s.out)] = input(t, x); break;
        case StepKind::Linear: w[size_t(s.out)] = linear(t, s, w[size_t(s.in)]); break;
        case StepKind::Add:
          w[size_t(s.out)] = w[size_t(s.in)];
          for (size_t k = 0; k < w[size_t(s.out)].size(); ++k) w[size_t(s.out)][k] += w[size_t(s.in2)][k];
          break;
        case StepKind::SumPool:
          w[size_t(s.out)] = per_lane(w[size_t(s.in)], [&](size_t, const std::vector<u64>& in) {
            return channel_sums(s.geom, in.data());
          });
          break;
        case StepKind::Gate: w[size_t(s.out)] = gate(t, i, w[size_t(s.in)]); break;
        case StepKind::PairDiff:
          w[size_t(s.out)] = per_lane(w[size_t(s.in)], [&](size_t, const std::vector<u64>& in) {
            return pair_diff(s, in);
          });
          break;
        case StepKind::PairMax: {
          const std::vector<u64>& relu = w[size_t(s.in2)];
          const size_t pairs = relu.size() / lanes_.size();
          w[size_t(s.out)] = per_lane(w[size_t(s.in)], [&](size_t l, const std::vector<u64>& in) {
            return pair_max(s, in, std::vector<u64>(relu.begin() + std::ptrdiff_t(l * pairs),
                                                    relu.begin() + std::ptrdiff_t((l + 1) * pairs)));
          });
          break;
        }
        case StepKind::Output:
          if (role_ == Party::Client) {
            const size_t k = lanes_[0].output_mask.size();
            for (size_t l = 0; l < lanes_.size(); ++l)
              for (size_t c = 0; c < k; ++c)
                logits[l].push_back(static_cast<int64_t>(w[size_t(s.in)][l * k + c] - lanes_[l].output_mask[c]));
          }
          break;
      }
      LayerRecord r = traffic_record(t.traffic() - before);
      r.compute_s = since(t0) - r.wait_s;
      // A pair of gate steps opened in one message: each step's record
      // shows its own payload, the message's framing and round the first's.
      r.bytes_sent += carried_payload_;
      r.bytes_received += carried_payload_;
      r.compute_s += carried_compute_s_;
      carried_payload_ = 0;
      carried_compute_s_ = 0;
      if (s.kind == StepKind::Gate && s.opens_with_next) {
        const Step& next = program_.steps[i + 1];
        carried_payload_ = uint64_t(8 * gate_of(next).words_sent(int64_t(lanes_.size()) * next.live_count));
        r.bytes_sent -= carried_payload_;
        r.bytes_received -= carried_payload_;
        carried_compute_s_ = next_compute_s_;
        r.compute_s -= carried_compute_s_;
      }
      r.live_relus = live_relus(s) * int64_t(lanes_.size());
      r.name = records_[i].name;
      r.kind = records_[i].kind;
      records_[i] += r;
    }
    return logits;
  }

 private:
  // Per inference of the batch: its input-independent linear shares and
  // masks (pre, m per linear layer; the client's input and output masks).
  struct Lane {
    std::vector<std::vector<u64>> pre, m;
    std::vector<u64> input_mask, output_mask;
  };

  // Words the server sends at setup for gate step `gate_index`.
  size_t setup_words(int gate_index) const {
    const Step& s = program_.gate_step(gate_index);
    return size_t(gate_of(s).setup_words(s));
  }
  size_t gate_key_bytes(size_t gate_index) const {
    const Step& s = program_.gate_step(int(gate_index));
    return size_t(s.live_count) * gate_of(s).key_bytes();
  }

  // A local step applied to each lane's part of its input wire: f(lane,
  // part); the lanes' outputs one after another. One lane: no copies.
  template <class F>
  std::vector<u64> per_lane(const std::vector<u64>& in, F f) const {
    if (lanes_.size() == 1) return f(0, in);
    const size_t n = in.size() / lanes_.size();
    std::vector<u64> out;
    for (size_t l = 0; l < lanes_.size(); ++l) {
      const std::vector<u64> part = f(l, std::vector<u64>(in.begin() + std::ptrdiff_t(l * n),
                                                          in.begin() + std::ptrdiff_t((l + 1) * n)));
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

  std::vector<u64> input(Transport& t, const std::vector<std::vector<int64_t>>* x) {
    const size_t n = size_t(program_.input_numel()), all = n * lanes_.size();
    t.count_round();
    if (role_ == Party::Server) return to_words(t.recv(MsgType::Input, 8 * all), 0, all);
    std::vector<u64> xh(all);
    for (size_t l = 0; l < lanes_.size(); ++l)
      for (size_t i = 0; i < n; ++i)
        xh[l * n + i] = static_cast<u64>((*x)[l][i]) + lanes_[l].input_mask[i];  // x^ = x + r0
    t.send(MsgType::Input, to_bytes(xh.data(), all));
    return xh;
  }

  // Sends this party's share, receives the peer's: the opened value.
  std::vector<u64> exchange(Transport& t, MsgType type, const std::vector<u64>& mine) {
    t.send(type, to_bytes(mine.data(), mine.size()));
    std::vector<u64> open = to_words(t.recv(type, 8 * mine.size()), 0, mine.size());
    for (size_t i = 0; i < open.size(); ++i) open[i] += mine[i];
    t.count_round();
    return open;
  }

  std::vector<u64> linear(Transport& t, const Step& s, const std::vector<u64>& x_hat) {
    const auto j = size_t(s.linear_index);
    const size_t in_n = size_t(s.geom.in_numel()), out_n = size_t(s.geom.out_numel());
    std::vector<u64> z(lanes_.size() * out_n);
    for (size_t l = 0; l < lanes_.size(); ++l) {
      std::vector<u64> zl = std::move(lanes_[l].pre[j]);
      if (role_ == Party::Server) linear_online_server(s.geom, w_[j].data(), x_hat.data() + l * in_n, zl, threads_);
      truncate_shares(role_, zl, f_);
      for (size_t i = 0; i < out_n; ++i) z[l * out_n + i] = zl[i] + lanes_[l].m[j][i];
    }
    return exchange(t, MsgType::LinearShare, z);
  }

  // Gate step `i`: its gate on its live elements (every lane's, in one
  // call), opened in its own exchanges, or (opens_with_next) with the next
  // step's shares in its first exchange, whose opened values then wait for
  // it in opened_next_.
  std::vector<u64> gate(Transport& t, size_t i, const std::vector<u64>& x_hat) {
    const Step& s = program_.steps[i];
    std::vector<u64> out = x_hat;  // a linearised element keeps its input and its mask
    const size_t numel = x_hat.size() / lanes_.size(), live = s.live.size();
    auto place = [&](const std::vector<u64>& opened) {
      for (size_t l = 0; l < lanes_.size(); ++l)
        for (size_t j = 0; j < live; ++j) out[l * numel + size_t(s.live[j])] = opened[l * live + j];
    };
    if (next_opened_) {  // the step before opened this one's shares with its own
      next_opened_ = false;
      place(opened_next_);
      return out;
    }
    // The next step's elements are untouched by this one: its input is x_hat.
    std::vector<u64> riders;
    if (s.opens_with_next) {
      const Step& next = program_.steps[i + 1];
      const auto t0 = Clock::now();
      riders = gate_of(next).shares(role_, gate_data(next), gate_keys(next), live_values(next, x_hat), threads_);
      next_compute_s_ = since(t0);
    }
    auto open = [&](const std::vector<u64>& shares) {
      if (riders.empty()) return exchange(t, MsgType::GateShare, shares);
      std::vector<u64> both = shares;  // the first exchange carries the next step's shares after this one's
      both.insert(both.end(), riders.begin(), riders.end());
      std::vector<u64> opened = exchange(t, MsgType::GateShare, both);
      opened_next_.assign(opened.begin() + std::ptrdiff_t(shares.size()), opened.end());
      next_opened_ = true;
      riders.clear();
      opened.resize(shares.size());
      return opened;
    };
    place(gate_of(s).evaluate(role_, gate_data(s), gate_keys(s), live_values(s, x_hat), open, threads_));
    return out;
  }
  // Every lane's live elements of a gate step, lane after lane.
  std::vector<u64> live_values(const Step& s, const std::vector<u64>& wire) const {
    const size_t numel = wire.size() / lanes_.size(), live = s.live.size();
    std::vector<u64> xs(lanes_.size() * live);
    for (size_t l = 0; l < lanes_.size(); ++l)
      for (size_t j = 0; j < live; ++j) xs[l * live + j] = wire[l * numel + size_t(s.live[j])];
    return xs;
  }
  const uint8_t* gate_keys(const Step& s) const {
    if (lanes_.size() == 1) return block_.data() + layout_.gates[size_t(s.gate_index)];
    return gate_keys_[size_t(s.gate_index)].data();
  }
  GateData gate_data(const Step& s) const { return GateData{&s, 0, gate_words_[size_t(s.gate_index)].data(), f_}; }

  Party role_;
  Program program_;
  int f_, threads_;
  BlockLayout layout_;
  std::vector<LayerRecord> records_;
  // A pair of gate steps opened in one message (Step::opens_with_next): the
  // second's opened values, and its payload and compute time, which its
  // record shows.
  std::vector<u64> opened_next_;
  bool next_opened_ = false;
  uint64_t carried_payload_ = 0;
  double next_compute_s_ = 0, carried_compute_s_ = 0;  // the second's shares' time, computed in the first
  std::vector<std::vector<u64>> w_, bias_, w_hat_;
  // Per gate step: what its gate evaluates with (the server's quantised
  // parameters, the client's setup words) and what the server sends at setup.
  std::vector<std::vector<u64>> gate_words_, gate_setup_;
  std::vector<double> mean_, std_;
  std::vector<Lane> lanes_;
  std::vector<uint8_t> block_;                     // one lane: its key block
  std::vector<std::vector<uint8_t>> gate_keys_;    // several: per gate step, every lane's keys
};

// What both parties read from their key file before talking.
struct KeySide {
  std::shared_ptr<KeyFile> file;
  KeyFile& keys;
  KeyLedger ledger;
  Program program;
  Architecture arch;
  KeySide(const std::shared_ptr<KeyFile>& opened, const std::string& path, Party want, const std::string& state_dir,
          double timeout_s)
      : file(opened ? opened : std::make_shared<KeyFile>(path, timeout_s)), keys(*file), ledger(keys, state_dir) {
    if (keys.header().party != want)
      throw std::invalid_argument("key file '" + keys.path() + "' holds " + party_name(keys.header().party) +
                                  " keys; the " + party_name(want) + " needs " + party_name(want) + ".key");
    arch = parse_architecture(keys.header().architecture);
    program = compile_program(arch);
  }
  // Takes block `index` (KeyLedger::take); a streamed key file's wait for
  // the dealer is added to *waited.
  std::vector<uint8_t> take(uint64_t index, double* waited) {
    const double before = keys.stream_wait_s();
    std::vector<uint8_t> block = ledger.take(index);
    *waited += keys.stream_wait_s() - before;
    return block;
  }
  Hello hello(uint64_t requested, uint64_t batch = 0) const {
    Hello h;
    h.key_version = keys.header().version;
    h.party = keys.header().party;
    h.f = keys.header().frac_bits;
    h.nonce = keys.header().nonce;
    h.hash = keys.header().model_hash;
    h.count = keys.header().count;
    h.next_unused = ledger.next_unused();
    h.requested = requested;
    h.batch = batch;
    return h;
  }
};

// The batches of a session of `count` inferences: `batch` at a time, the
// last one what is left.
template <class F>
void for_batches(uint64_t count, uint64_t batch, F f) {
  for (uint64_t first = 0; first < count; first += batch) f(first, int(std::min(batch, count - first)));
}

// Hello both ways: each party sends before it reads, so both see (and refuse) a mismatch.
// The server learns the client's requested inferences and batch size.
uint64_t handshake(Transport& t, const KeySide& side, const Hello& mine, uint64_t* requested = nullptr,
                   uint64_t* batch = nullptr) {
  t.send(MsgType::Hello, encode(mine));
  const Hello peer = decode_hello(t.recv(MsgType::Hello));
  t.count_round();
  const uint64_t start = check_hello(mine, peer, side.keys.path());
  if (requested) *requested = peer.requested;
  if (batch) *batch = peer.batch;
  return start;
}

void finish_report(PartyReport& rep, const Engine& e, const KeySide& side) {
  rep.layers = e.records();
  rep.online = LayerRecord{};
  rep.online.name = "online";
  rep.online.kind = "total";
  for (const auto& l : rep.layers) rep.online += l;
  rep.key_file_bytes = side.keys.file_bytes();
  rep.key_bytes_per_inference = side.keys.header().block_bytes + 32;
  rep.peak_rss_bytes = peak_rss_bytes();
  rep.key_streamed = side.keys.streamed();
}

// The session's traffic outside the online steps: handshake, W^, the
// per-inference "ready" signals.
LayerRecord setup_record(const Traffic& session, const LayerRecord& online) {
  LayerRecord r = traffic_record(session);
  r.name = r.kind = "setup";
  r.bytes_sent -= online.bytes_sent;
  r.bytes_received -= online.bytes_received;
  r.framing_sent -= online.framing_sent;
  r.framing_received -= online.framing_received;
  r.rounds -= online.rounds;
  r.wait_s -= online.wait_s;
  return r;
}

template <class F>
auto reporting_errors(Transport& t, const char* party, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    t.send_error(std::string(party) + ": " + e.what());
    throw;
  }
}

}  // namespace

ServerReport serve_session(Transport& t, const FloatModel& model, const ServerOptions& o) {
  return reporting_errors(t, "server", [&] {
    KeySide side(o.keys, o.key_path, Party::Server, o.state_dir, o.timeout_s);
    const int f = side.keys.header().frac_bits;
    Engine e(Party::Server, side.program, f, o.threads);
    e.set_weights(quantise(side.program, model, f), side.keys.read_global());
    normalise(side.program.input, model, std::vector<float>(size_t(side.program.input_numel())));  // checks mean/std
    ServerReport rep;
    rep.model_hash = hex(side.keys.header().model_hash);
    PartyReport& pr = rep.server;
    pr.party = "server";
    pr.threads = o.threads;

    const Traffic t_setup = t.traffic();
    uint64_t requested = 0, batch = 1;
    pr.first_inference = handshake(t, side, side.hello(0), &requested, &batch);
    pr.batch = int64_t(batch);
    t.send(MsgType::Setup, e.setup_payload(model.mean, model.std));
    for_batches(requested, batch, [&](uint64_t first, int lanes) {
      const auto t0 = Clock::now();
      double waited = 0;
      e.begin_batch(lanes);
      for (int l = 0; l < lanes; ++l) e.preprocess(l, side.take(pr.first_inference + first + uint64_t(l), &waited));
      pr.preprocessing_s += since(t0) - waited;
      pr.key_wait_s += waited;
      t.send(MsgType::Ready, {});
      const auto t1 = Clock::now();
      e.online(t, nullptr);
      pr.online_s += since(t1);
      pr.inferences += lanes;
      ++pr.batches;
    });
    finish_report(pr, e, side);
    pr.setup = setup_record(t.traffic() - t_setup, pr.online);
    const std::string records = party_records(pr).dump();
    t.send(MsgType::Records, std::vector<uint8_t>(records.begin(), records.end()));
    t.close_gracefully();
    return rep;
  });
}

namespace {

// Inferences first .. first + lanes - 1 of the session, as one batch: each
// image's result, with its share of the batch's time and bytes.
std::vector<ImageResult> client_batch(Transport& t, Engine& e, KeySide& side, const ClientOptions& o, uint64_t first,
                                      int lanes, uint64_t first_key, double* key_wait_s) {
  const int f = side.keys.header().frac_bits;
  std::vector<ImageResult> rs(static_cast<size_t>(lanes));
  std::vector<std::vector<int64_t>> x(static_cast<size_t>(lanes));
  const auto t0 = Clock::now();
  double waited = 0;
  e.begin_batch(lanes);
  for (int l = 0; l < lanes; ++l) e.preprocess(l, side.take(first_key + first + uint64_t(l), &waited));
  const double preprocessing = since(t0) - waited;
  *key_wait_s += waited;
  for (int l = 0; l < lanes; ++l) {
    ImageResult& r = rs[size_t(l)];
    r.index = int64_t(first) + l;
    r.key_index = first_key + first + uint64_t(l);
    r.batch = lanes;
    r.preprocessing_s = preprocessing / lanes;
    const ClientImage img = o.image(r.index);
    r.label = img.label;
    x[size_t(l)] = quantise_input(normalise(side.program.input, e.mean(), e.stdev(), img.pixels), f);
  }
  t.recv(MsgType::Ready, 0);
  const Traffic before = t.traffic();
  const auto t1 = Clock::now();
  const std::vector<std::vector<int64_t>> logits = e.online(t, &x);
  const double online = since(t1);
  const Traffic d = t.traffic() - before;
  for (int l = 0; l < lanes; ++l) {
    ImageResult& r = rs[size_t(l)];
    r.batch_online_s = online;
    r.online_s = online / lanes;
    r.bytes = (d.payload_sent + d.payload_received) / uint64_t(lanes);
    r.framing_bytes = (d.framing_sent + d.framing_received) / uint64_t(lanes);
    r.rounds = d.rounds;
    r.logits_fixed = logits[size_t(l)];
    r.logits = to_double(r.logits_fixed, f);
    r.argmax = argmax(r.logits_fixed);
  }
  return rs;
}

}  // namespace

ClientReport client_session(Transport& t, const ClientOptions& o) {
  if (o.count < 1) throw std::invalid_argument("client: count must be at least 1 image");
  if (!o.image) throw std::invalid_argument("client: no image callback given");
  if (o.batch < 1 || uint64_t(o.batch) > kMaxBatch)
    throw std::invalid_argument("client: batch must be 1 to " + std::to_string(kMaxBatch) + " images");
  return reporting_errors(t, "client", [&] {
    KeySide side(o.keys, o.key_path, Party::Client, o.state_dir, o.timeout_s);
    Engine e(Party::Client, side.program, side.keys.header().frac_bits, o.threads);
    ClientReport rep;
    rep.model_hash = hex(side.keys.header().model_hash);
    rep.spec = side.arch.spec;
    rep.frac_bits = side.keys.header().frac_bits;
    rep.expected = expected_cost(side.program);
    PartyReport& pr = rep.client;
    pr.party = "client";
    pr.threads = o.threads;

    const Traffic t_setup = t.traffic();
    pr.first_inference = handshake(t, side, side.hello(uint64_t(o.count), uint64_t(o.batch)));
    pr.batch = o.batch;
    e.read_setup(t.recv(MsgType::Setup));
    for_batches(uint64_t(o.count), uint64_t(o.batch), [&](uint64_t first, int lanes) {
      for (ImageResult& r : client_batch(t, e, side, o, first, lanes, pr.first_inference, &pr.key_wait_s)) {
        pr.preprocessing_s += r.preprocessing_s;
        pr.online_s += r.online_s;
        ++pr.inferences;
        rep.images.push_back(std::move(r));
      }
      ++pr.batches;
    });
    finish_report(pr, e, side);
    pr.setup = setup_record(t.traffic() - t_setup, pr.online);
    const auto records = t.recv(MsgType::Records);
    try {
      rep.server = party_from_records(nlohmann::json::parse(records.begin(), records.end()));
    } catch (const nlohmann::json::exception& ex) {
      throw std::runtime_error(std::string("protocol error: the server's records are malformed: ") + ex.what());
    }
    t.close_gracefully();
    return rep;
  });
}

ServerReport serve(const FloatModel& model, const ServerOptions& o) {
  Listener listener(o.bind_address, o.port);
  if (o.on_listening) o.on_listening(listener.port());
  TransportOptions to;
  to.timeout_s = o.timeout_s;
  auto t = listener.accept(to, o.accept_timeout_s);
  ServerReport rep = serve_session(*t, model, o);
  rep.port = listener.port();
  return rep;
}

ClientReport run_client(const ClientOptions& o) {
  TransportOptions to;
  to.timeout_s = o.timeout_s;
  auto t = Transport::connect(o.host, o.port, to);
  return client_session(*t, o);
}

}  // namespace dr::mpc
