#include "mpc/dealer.h"

#include <sys/statvfs.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "mpc/gate.h"
#include "mpc/key_stream.h"
#include "mpc/keys.h"
#include "mpc/linear.h"
#include "mpc/protocol.h"
#include "util/fs.h"

namespace dr::mpc {

namespace {

// Writes u64 values into a key block at a byte offset.
void put_words(std::vector<uint8_t>& block, size_t at, const u64* v, size_t n) {
  std::memcpy(block.data() + at, v, n * sizeof(u64));
}

struct Dealing {
  const Program& program;
  const BlockLayout& server_layout;
  const BlockLayout& client_layout;
  const std::vector<std::vector<u64>>& weight_masks;  // A per linear layer
  const std::vector<std::vector<u64>>& session;       // per gate step: its session words
  int threads;
};

void deal_linear(const Dealing& d, const Step& s, const std::vector<u64>& rx, const ClientLinearShares& c,
                 Prg& rng, std::vector<u64>& ry, std::vector<uint8_t>& server) {
  const ConvGeom& g = s.geom;
  const auto& part = d.server_layout.linear[size_t(s.linear_index)];
  std::vector<u64> u_s(rx.size()), a_rx(size_t(g.out_numel()));
  for (size_t i = 0; i < rx.size(); ++i) u_s[i] = rx[i] - c.u[i];  // rx = u_s + u_c
  linear_forward<u64>(g, d.weight_masks[size_t(s.linear_index)].data(), rx.data(), a_rx.data(), d.threads);
  for (size_t i = 0; i < a_rx.size(); ++i) a_rx[i] -= c.k[i];  // A*rx = k_s + k_c
  ry.resize(a_rx.size());
  rng.fill(ry.data(), ry.size());
  std::vector<u64> m_s(ry.size());
  for (size_t i = 0; i < ry.size(); ++i) m_s[i] = ry[i] - c.m[i];  // ry = m_s + m_c
  put_words(server, part.u, u_s.data(), u_s.size());
  put_words(server, part.k, a_rx.data(), a_rx.size());
  put_words(server, part.m, m_s.data(), m_s.size());
}

// A gate step's keys for its live elements; the output mask is fresh there
// and equal to the input mask elsewhere (a linearised element passes through).
void deal_gate(const Dealing& d, const Step& s, const std::vector<u64>& rin, Prg& rng, std::vector<u64>& rout,
               std::vector<uint8_t>& server, std::vector<uint8_t>& client) {
  const Gate& gate = gate_of(s);
  const size_t n = s.live.size(), kb = gate.key_bytes();
  rout = rin;
  std::vector<u64> a(n), b(n);
  rng.fill(b.data(), n);
  for (size_t j = 0; j < n; ++j) {
    a[j] = rin[size_t(s.live[j])];
    rout[size_t(s.live[j])] = b[j];
  }
  uint8_t* k0 = server.data() + d.server_layout.gates[size_t(s.gate_index)];
  uint8_t* k1 = client.data() + d.client_layout.gates[size_t(s.gate_index)];
  const u64* session = d.session[size_t(s.gate_index)].data();
  // Each thread draws its key randomness from its own OS-seeded Prg.
  parallel_for(int64_t(n), d.threads, [&](int64_t lo, int64_t hi) {
    Prg local;
    gate.deal(GateData{&s, size_t(lo), session, 0}, a.data() + lo, b.data() + lo, size_t(hi - lo), local,
              k0 + size_t(lo) * kb, k1 + size_t(lo) * kb);
  });
}

// One inference: walks the program drawing every wire's mask.
void deal_one(const Dealing& d, Prg& rng, std::vector<uint8_t>& server, std::vector<uint8_t>& client) {
  const Program& p = d.program;
  std::vector<std::vector<u64>> r(p.wire_numel.size());
  Seed seed;
  rng.bytes(seed.data(), seed.size());
  std::memcpy(client.data() + d.client_layout.seed, seed.data(), seed.size());
  const auto shares = derive_client_shares(p, seed);
  for (const Step& s : p.steps) {
    switch (s.kind) {
      case StepKind::Input:
        r[s.out].resize(size_t(p.input_numel()));
        rng.fill(r[s.out].data(), r[s.out].size());
        put_words(client, d.client_layout.input_mask, r[s.out].data(), r[s.out].size());
        break;
      case StepKind::Linear: deal_linear(d, s, r[s.in], shares[size_t(s.linear_index)], rng, r[s.out], server); break;
      case StepKind::Add:
        r[s.out] = r[s.in];
        for (size_t i = 0; i < r[s.out].size(); ++i) r[s.out][i] += r[s.in2][i];
        break;
      case StepKind::SumPool: r[s.out] = channel_sums(s.geom, r[s.in].data()); break;
      case StepKind::Gate: deal_gate(d, s, r[s.in], rng, r[s.out], server, client); break;
      case StepKind::PairDiff: r[s.out] = pair_diff(s, r[s.in]); break;
      case StepKind::PairMax: r[s.out] = pair_max(s, r[s.in], r[s.in2]); break;
      case StepKind::Output:
        put_words(client, d.client_layout.output_mask, r[s.in].data(), r[s.in].size());
        break;
    }
  }
}

// The two key files' headers for `count` inferences under a fresh nonce.
std::pair<KeyHeader, KeyHeader> key_headers(const Architecture& arch, const Program& program, int frac_bits, uint64_t count,
                                            Prg& rng) {
  KeyHeader h;
  h.version = key_format_version(program);
  h.frac_bits = frac_bits;
  rng.bytes(h.nonce.data(), h.nonce.size());
  h.count = count;
  h.architecture = serialize_architecture(arch);
  h.model_hash = model_hash(arch, frac_bits);
  KeyHeader hs = h, hc = h;
  hs.party = Party::Server;
  hs.global_bytes = global_bytes(program, Party::Server);
  hs.block_bytes = block_layout(program, Party::Server).bytes;
  hc.party = Party::Client;
  hc.global_bytes = 0;
  hc.block_bytes = block_layout(program, Party::Client).bytes;
  return {hs, hc};
}

uint64_t both_files(const std::pair<KeyHeader, KeyHeader>& h) {
  const uint64_t s = key_file_bytes(h.first), c = key_file_bytes(h.second), max = ~uint64_t(0);
  return s > max - c ? max : s + c;
}

// "2.80 GB (2800000000 bytes)"
std::string size_text(uint64_t n) {
  if (n == ~uint64_t(0)) return "more than 18 EB";
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  double v = double(n);
  int u = 0;
  while (v >= 1000 && u < 6) v /= 1000, ++u;
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return u == 0 ? buf : std::string(buf) + " (" + std::to_string(n) + " bytes)";
}

}  // namespace

uint64_t deal_bytes(const Architecture& arch, int frac_bits, uint64_t count) {
  check_frac_bits(frac_bits);
  Prg rng;
  return both_files(key_headers(arch, compile_program(arch), frac_bits, count, rng));
}

void check_free_space(const std::string& dir, uint64_t need, const std::string& hint) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = fs::absolute(dir, ec);
  while (!ec && !fs::exists(at, ec) && at.has_relative_path()) at = at.parent_path();  // the dir to be created
  struct statvfs st {};
  if (ec || ::statvfs(at.c_str(), &st) != 0) return;  // unknown: the writes will say what fails
  const uint64_t free_bytes = uint64_t(st.f_bavail) * uint64_t(st.f_frsize);
  if (need > free_bytes)
    throw std::invalid_argument("the key files need " + size_text(need) + " but the file system of '" + dir +
                                "' has " + size_text(free_bytes) + " free: " + hint);
}

DealReport deal(const Architecture& arch, const DealOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_frac_bits(o.frac_bits);
  if (o.count < 1) throw std::invalid_argument("deal: count must be at least 1 inference");
  if (o.out_dir.empty()) throw std::invalid_argument("deal: no output directory given");
  const arch::Network net = build_network(arch);
  const Program program = compile_program(net, ProgramDetail::Indices, arch.relu_gate);
  const BlockLayout sl = block_layout(program, Party::Server), cl = block_layout(program, Party::Client);
  Prg rng;  // seeded from the OS
  const auto [hs, hc] = key_headers(arch, program, o.frac_bits, o.count, rng);
  DealReport rep;
  rep.server_path = util::path_join(o.out_dir, "server.key");
  rep.client_path = util::path_join(o.out_dir, "client.key");
  if (o.stream) {
    for (const auto& p : {rep.server_path, rep.client_path})
      if (!is_named_pipe(p))
        throw std::invalid_argument("deal --stream: '" + p + "' is not a named pipe (make it with mkfifo, and start " +
                                    "the party that reads it)");
  } else {
    util::remove_stale_temporaries(o.out_dir);  // what a kill -9 of an earlier deal left
    check_free_space(o.out_dir, both_files({hs, hc}), "deal fewer inferences (--count) or write them to a larger disk");
  }
  // The server's pipe opens first: its reader starts first (pi run). The
  // destructors remove unfinished files.
  KeyWriter ws(rep.server_path, hs, o.stream_timeout_s), wc(rep.client_path, hc, o.stream_timeout_s);

  // The server's global section: a weight mask per linear layer, then each
  // gate step's session words, all uniform.
  std::vector<std::vector<u64>> masks, session;
  std::vector<u64> flat;
  for (int i : program.linear_steps) {
    masks.emplace_back(size_t(program.steps[size_t(i)].geom.weight_numel()));
    rng.fill(masks.back().data(), masks.back().size());
    flat.insert(flat.end(), masks.back().begin(), masks.back().end());
  }
  for (int i : program.gate_steps) {
    const Step& s = program.steps[size_t(i)];
    session.emplace_back(size_t(gate_of(s).session_words(s)));
    rng.fill(session.back().data(), session.back().size());
    flat.insert(flat.end(), session.back().begin(), session.back().end());
  }
  ws.write_global(reinterpret_cast<const uint8_t*>(flat.data()), flat.size() * sizeof(u64));
  wc.write_global(nullptr, 0);

  const Dealing d{program, sl, cl, masks, session, std::max(1, o.threads)};
  std::vector<uint8_t> server(sl.bytes), client(cl.bytes);
  for (uint64_t i = 0; i < o.count; ++i) {
    if (o.interrupted && o.interrupted())
      throw DealInterrupted("deal interrupted after " + std::to_string(i) + " of " + std::to_string(o.count) +
                            " inferences; no key file was written");
    deal_one(d, rng, server, client);
    ws.write_block(server.data(), server.size());
    wc.write_block(client.data(), client.size());
  }
  ws.commit();
  wc.commit();

  rep.count = o.count;
  rep.frac_bits = o.frac_bits;
  rep.model_hash = hex(hs.model_hash);
  rep.server_file_bytes = ws.bytes();
  rep.client_file_bytes = wc.bytes();
  rep.server_block_bytes = sl.bytes + 32;
  rep.client_block_bytes = cl.bytes + 32;
  rep.server_global_bytes = hs.global_bytes;
  rep.live_relus = net.totals().relus;
  rep.poly_elements = net.totals().polys;
  rep.streamed = o.stream;
  rep.stream_wait_s = ws.stream_wait_s() + wc.stream_wait_s();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

nlohmann::json to_json(const DealReport& r) {
  return {{"seconds", r.seconds},
          {"inferences", r.count},
          {"frac_bits", r.frac_bits},
          {"ring_bits", kRingBits},
          {"model_hash", r.model_hash},
          {"live_relus", r.live_relus},
          {"poly_elements", r.poly_elements},
          {"streamed", r.streamed},
          {"stream_wait_s", r.stream_wait_s},
          {"server", {{"path", r.server_path}, {"file_bytes", r.server_file_bytes},
                      {"bytes_per_inference", r.server_block_bytes}, {"global_bytes", r.server_global_bytes}}},
          {"client", {{"path", r.client_path}, {"file_bytes", r.client_file_bytes},
                      {"bytes_per_inference", r.client_block_bytes}}}};
}

}  // namespace dr::mpc
