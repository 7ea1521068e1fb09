#include "mpc/protocol.h"

#include "mpc/linear.h"

namespace dr::mpc {

std::vector<u64> linear_pre_server(const ConvGeom& g, const u64* w_hat, const u64* u_s, const u64* k_s,
                                   const u64* bias, int threads) {
  std::vector<u64> z(size_t(g.out_numel()));
  linear_forward<u64>(g, w_hat, u_s, z.data(), threads);
  for (size_t i = 0; i < z.size(); ++i) z[i] = k_s[i] - z[i];
  add_channel_bias<u64>(g, bias, z.data());
  return z;
}

std::vector<u64> linear_pre_client(const ConvGeom& g, const u64* w_hat, const u64* u_c, const u64* k_c,
                                   int threads) {
  std::vector<u64> z(size_t(g.out_numel()));
  linear_forward<u64>(g, w_hat, u_c, z.data(), threads);
  for (size_t i = 0; i < z.size(); ++i) z[i] = k_c[i] - z[i];
  return z;
}

void linear_online_server(const ConvGeom& g, const u64* w, const u64* x_hat, std::vector<u64>& pre, int threads) {
  std::vector<u64> wx(pre.size());
  linear_forward<u64>(g, w, x_hat, wx.data(), threads);
  for (size_t i = 0; i < pre.size(); ++i) pre[i] += wx[i];
}

void truncate_shares(Party p, std::vector<u64>& z, int f) {
  for (u64& v : z) v = truncate_share(p, v, f);
}

std::vector<u64> channel_sums(const ConvGeom& g, const u64* x) {
  const int64_t hw = g.h * g.w;
  std::vector<u64> out(size_t(g.cin), 0);
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t i = 0; i < hw; ++i) out[size_t(c)] += x[size_t(c * hw + i)];
  return out;
}

}  // namespace dr::mpc
