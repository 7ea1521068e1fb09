// Micro-benchmark of the FSS ReLU gate (src/mpc/gates/relu.h), single-threaded:
// key bytes, dealer key generation and per-party evaluation time per ReLU,
// and the raw fixed-key AES rate that bounds evaluation.
//
//   cmake --build build --target deepreduce_bench_fss && ./build/deepreduce_bench_fss [count] [runs]
//
// Defaults: 100,000 ReLUs, median of 5 runs. The figures in
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
#include "util/provenance.h"

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

}  // namespace

int main(int argc, char** argv) try {
  const size_t count = argc > 1 ? std::stoul(argv[1]) : 100000;
  const int runs = argc > 2 ? std::stoi(argv[2]) : 5;
  if (count == 0 || runs < 1) throw std::runtime_error("usage: deepreduce_bench_fss [count >= 1] [runs >= 1]");
  const size_t kb = relu_key_bytes();
  Prg rng;
  std::vector<u64> x(count), r_in(count), r_out(count), x_hat(count), s0(count), s1(count);
  rng.fill(x.data(), count);
  rng.fill(r_in.data(), count);
  rng.fill(r_out.data(), count);
  for (size_t i = 0; i < count; ++i) x_hat[i] = x[i] + r_in[i];
  std::vector<uint8_t> k0(count * kb), k1(count * kb);

  const double gen = median_seconds(runs, [&] { relu_gen(r_in.data(), r_out.data(), count, rng, k0.data(), k1.data()); });
  const double ev0 = median_seconds(runs, [&] { relu_eval(0, k0.data(), x_hat.data(), count, s0.data()); });
  const double ev1 = median_seconds(runs, [&] { relu_eval(1, k1.data(), x_hat.data(), count, s1.data()); });
  size_t wrong = 0;
  for (size_t i = 0; i < count; ++i) {
    const u64 want = (int64_t(x[i]) >= 0 ? x[i] : 0) + r_out[i];
    wrong += s0[i] + s1[i] != want;
  }
  const double aes_ns = aes_ns_per_block(runs);
  const size_t blocks = 63 * 2 + 1;  // AES blocks per ReLU evaluation (mpc/dcf.h)

  std::printf("deepreduce %s; %s\n", dr::util::version_string().c_str(), dr::util::provenance().dump().c_str());
  std::printf("CPU: %s\n", cpu_name().c_str());
  std::printf("ReLUs: %zu per batch, single thread, median of %d runs\n", count, runs);
  std::printf("key bytes per ReLU per party:        %zu\n", kb);
  std::printf("online bytes per ReLU:               16 (8 per party)\n");
  std::printf("dealer key generation per ReLU:      %.3f us (both keys)\n", gen * 1e6 / double(count));
  std::printf("evaluation per ReLU, party 0:        %.3f us\n", ev0 * 1e6 / double(count));
  std::printf("evaluation per ReLU, party 1:        %.3f us\n", ev1 * 1e6 / double(count));
  std::printf("fixed-key AES (EVP ECB, 1024-block calls): %.2f ns per block; %zu blocks per ReLU = %.3f us\n",
              aes_ns, blocks, aes_ns * double(blocks) / 1e3);
  std::printf("check: %zu of %zu openings wrong\n", wrong, count);
  return wrong == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "deepreduce_bench_fss: %s\n", e.what());
  return 1;
}
