// Micro-benchmark of the FSS ReLU gates, single-threaded: the one-round DCF
// gate (src/mpc/gates/relu.h, `--relu-gate dcf` and `dcf:N`) and the two-round DPF gate
// on a reduced width (src/mpc/gates/relu_dpf.h, `--relu-gate dpf:N`): key
// bytes, online bytes and rounds, dealer key generation and per-party
// evaluation time per ReLU (both rounds' compute; the opening between them
// is a sum outside the timing), every output checked; and the raw fixed-key
// AES rate that bounds evaluation.
//
//   cmake --build build --target deepreduce_bench_fss &&
//     ./build/deepreduce_bench_fss [count] [runs] [gates]
//
// Defaults: 100,000 ReLUs, median of 5 runs, gates dcf,dcf:24,dcf:32,dpf:32,dpf:40,dpf:64
// (inputs: uniform over the gate's exact range). The figures in
// docs/private_inference.md ("FSS figures") come from this program.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mpc/aes.h"
#include "mpc/gates/relu.h"
#include "mpc/gates/relu_dpf.h"
#include "mpc/program.h"
#include "util/provenance.h"
#include "util/strings.h"

using namespace dr::mpc;

namespace {

// "model name" of /proc/cpuinfo, with family/model (VMs often hide the name).
std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown CPU", family, model;
  auto value = [](const std::string& l) { return l.substr(l.find(':') + 2); };
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && name == "unknown CPU") name = value(line);
    if (line.rfind("cpu family", 0) == 0 && family.empty()) family = value(line);
    if (line.rfind("model\t", 0) == 0 && model.empty()) model = value(line);
  }
  return name + " (family " + family + ", model " + model + ")";
}

template <class F>
double seconds(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
double median_seconds(int runs, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) t.push_back(seconds(f));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Nanoseconds per block of the fixed-key AES context on a batch like the
// evaluator's (one EVP call per 1,024 blocks).
double aes_ns_per_block(int runs) {
  const size_t blocks = 1024, reps = 2000;
  std::vector<uint8_t> in(blocks * 16, 0x5a), out(in.size());
  const Aes128Ecb& aes = fss_fixed_key_aes();
  double s = median_seconds(runs, [&] {
    for (size_t r = 0; r < reps; ++r) aes.encrypt_blocks(in.data(), out.data(), blocks);
  });
  return s * 1e9 / double(blocks * reps);
}

struct GateFigures {
  std::string gate;
  int rounds = 1;
  size_t key_bytes = 0;
  double online_bytes = 0;  // per ReLU, both parties
  double gen_us = 0, eval_us[2] = {0, 0};
  size_t wrong = 0, blocks = 0;
};

// The gate `choice` on `count` ReLUs whose inputs lie in its exact range.
GateFigures measure(const ReluGateChoice& choice, size_t count, int runs) {
  GateFigures f;
  f.gate = relu_gate_name(choice);
  const bool dpf = choice.kind == ReluGateChoice::Kind::Dpf;
  const int bits = choice.bits;
  f.rounds = dpf ? 2 : 1;
  f.key_bytes = dpf ? relu_dpf_key_bytes(bits) : relu_key_bytes(bits);
  f.online_bytes = dpf ? 2 * (8.0 + 8.0 / 32) : 16.0;
  // AES blocks per evaluation: the DCF's 2 per level and 1 at the leaf; the
  // DPF's 1.5 per level on average (2 where the input bit is 0) and 1 at the leaf.
  f.blocks = dpf ? size_t(1.5 * (bits - 1 - 7) + 1) : size_t(bits - 1) * 2 + 1;
  Prg rng;
  std::vector<u64> x(count), r_in(count), r_out(count), x_hat(count), s0(count), s1(count);
  rng.fill(x.data(), count);
  if (bits < 64)
    for (u64& v : x) v = u64(int64_t(v << (64 - bits)) >> (64 - bits));  // sign-extended low bits: in range
  rng.fill(r_in.data(), count);
  rng.fill(r_out.data(), count);
  for (size_t i = 0; i < count; ++i) x_hat[i] = x[i] + r_in[i];
  std::vector<uint8_t> k0(count * f.key_bytes), k1(count * f.key_bytes);
  double gen = 0, ev[2] = {0, 0};
  if (!dpf) {
    gen = median_seconds(runs, [&] { relu_gen(r_in.data(), r_out.data(), count, rng, k0.data(), k1.data(), bits); });
    ev[0] = median_seconds(runs, [&] { relu_eval(0, k0.data(), x_hat.data(), count, s0.data(), bits); });
    ev[1] = median_seconds(runs, [&] { relu_eval(1, k1.data(), x_hat.data(), count, s1.data(), bits); });
  } else {
    gen = median_seconds(runs, [&] { relu_dpf_gen(bits, r_in.data(), r_out.data(), count, rng, k0.data(), k1.data()); });
    std::vector<u64> w[2];
    for (int b = 0; b < 2; ++b)
      ev[b] = median_seconds(runs, [&] { w[b] = relu_dpf_round1(b, bits, (b ? k1 : k0).data(), x_hat.data(), count); });
    std::vector<u64> d_hat(w[0].size());
    for (size_t i = 0; i < d_hat.size(); ++i) d_hat[i] = w[0][i] + w[1][i];
    for (int b = 0; b < 2; ++b)
      ev[b] += median_seconds(runs, [&] {
        relu_dpf_round2(b, bits, (b ? k1 : k0).data(), x_hat.data(), d_hat, count, (b ? s1 : s0).data());
      });
  }
  for (size_t i = 0; i < count; ++i) f.wrong += s0[i] + s1[i] != (int64_t(x[i]) >= 0 ? x[i] : 0) + r_out[i];
  f.gen_us = gen * 1e6 / double(count);
  for (int b = 0; b < 2; ++b) f.eval_us[b] = ev[b] * 1e6 / double(count);
  return f;
}

}  // namespace

int main(int argc, char** argv) try {
  const size_t count = argc > 1 ? std::stoul(argv[1]) : 100000;
  const int runs = argc > 2 ? std::stoi(argv[2]) : 5;
  const std::string gates = argc > 3 ? argv[3] : "dcf,dcf:24,dcf:32,dpf:32,dpf:40,dpf:64";
  if (count == 0 || runs < 1)
    throw std::runtime_error("usage: deepreduce_bench_fss [count >= 1] [runs >= 1] [gates: dcf,dpf:N,...]");
  std::vector<GateFigures> figures;
  for (const std::string& gate : dr::util::split(gates, ','))
    figures.push_back(measure(parse_relu_gate(gate), count, runs));
  const double aes_ns = aes_ns_per_block(runs);

  std::printf("deepreduce %s; %s\n", dr::util::version_string().c_str(), dr::util::provenance().dump().c_str());
  std::printf("CPU: %s\n", cpu_name().c_str());
  std::printf("ReLUs: %zu per batch, single thread, median of %d runs; inputs uniform over each gate's exact range\n",
              count, runs);
  std::printf("fixed-key AES (EVP ECB, 1024-block calls): %.2f ns per block\n\n", aes_ns);
  std::printf("%-8s %6s %18s %22s %22s %20s %20s %14s %8s\n", "gate", "rounds", "key B/ReLU/party",
              "online B/ReLU (both)", "dealer us/ReLU (both)", "eval us/ReLU party0", "eval us/ReLU party1",
              "AES bound us", "wrong");
  size_t wrong = 0;
  for (const GateFigures& f : figures) {
    std::printf("%-8s %6d %18zu %22.2f %22.3f %20.3f %20.3f %14.3f %8zu\n", f.gate.c_str(), f.rounds, f.key_bytes,
                f.online_bytes, f.gen_us, f.eval_us[0], f.eval_us[1], aes_ns * double(f.blocks) / 1e3, f.wrong);
    wrong += f.wrong;
  }
  std::printf("check: %zu wrong openings over %zu gates\n", wrong, figures.size());
  return wrong == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "deepreduce_bench_fss: %s\n", e.what());
  return 1;
}
