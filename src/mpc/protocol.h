#pragma once
// The per-layer arithmetic of the two parties (docs/private_inference.md),
// apart from any transport, so tests can check it against the plaintext
// reference directly. For a linear layer with input mask rx = u_s + u_c,
// weight mask A, A*rx = k_s + k_c and W^ = W + A:
//
//   server:  z_s = W*x^ - W^*u_s + k_s + B      (B: bias at scale 2f)
//   client:  z_c =      - W^*u_c + k_c
//
// z_s + z_c = W*x + B exactly. Everything but W*x^ is the preprocessing.
// Each party truncates its share locally (SecureML) and adds its share of
// the output mask; the exchange opens y^ = trunc(z) + ry.
#include <cstdint>
#include <vector>

#include "mpc/keys.h"
#include "mpc/program.h"

namespace dr::mpc {

// Server preprocessing: -W^*u_s + k_s + B.
std::vector<u64> linear_pre_server(const ConvGeom& g, const u64* w_hat, const u64* u_s, const u64* k_s,
                                   const u64* bias, int threads = 1);
// Client preprocessing: -W^*u_c + k_c.
std::vector<u64> linear_pre_client(const ConvGeom& g, const u64* w_hat, const u64* u_c, const u64* k_c,
                                   int threads = 1);
// Server online: z_s = W*x^ + pre (in place on `pre`).
void linear_online_server(const ConvGeom& g, const u64* w, const u64* x_hat, std::vector<u64>& pre, int threads = 1);

// SecureML local truncation by f bits: the server shifts its share
// arithmetically, the client negates, shifts and negates back. The two
// results sum to floor(z / 2^f) or one more, except with probability about
// |z| / 2^64 (then the element is off by about 2^(64-f)); the derivation is
// in docs/private_inference.md.
inline u64 truncate_share(Party p, u64 z, int f) {
  if (p == Party::Server) return static_cast<u64>(static_cast<int64_t>(z) >> f);
  return static_cast<u64>(-(static_cast<int64_t>(-z) >> f));
}
void truncate_shares(Party p, std::vector<u64>& z, int f);

// Per-channel sums of a masked opening (global pool): local, masks sum too.
std::vector<u64> channel_sums(const ConvGeom& g, const u64* x);

}  // namespace dr::mpc
