// The private protocol's arithmetic against the plaintext fixed-point
// reference (layer by layer, two parties in one process), and whole sessions
// over a socketpair.
#include <sys/socket.h>

#include "mpc/cost.h"
#include "mpc/linear.h"
#include "mpc/protocol.h"
#include "mpc_test_util.h"

using namespace dr;
using namespace dr::mpc;
using namespace dr::mpc::test;

namespace {

std::vector<u64> random_words(size_t n, std::mt19937_64& rng) {
  std::vector<u64> v(n);
  for (auto& x : v) x = rng();
  return v;
}
// Signed values in [-2^bits, 2^bits] as ring elements.
std::vector<u64> small_words(size_t n, int bits, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> d(-(int64_t(1) << bits), int64_t(1) << bits);
  std::vector<u64> v(n);
  for (auto& x : v) x = static_cast<u64>(d(rng));
  return v;
}
std::vector<u64> sub(const std::vector<u64>& a, const std::vector<u64>& b) {
  std::vector<u64> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}

ConvGeom conv(int64_t cin, int64_t cout, int64_t h, int64_t k, int64_t stride, int64_t groups) {
  ConvGeom g;
  g.cin = cin, g.cout = cout, g.h = g.w = h, g.k = k, g.stride = stride, g.pad = k / 2, g.groups = groups;
  g.oh = g.ow = (h + 2 * g.pad - k) / stride + 1;
  return g;
}

}  // namespace

// Dealer, server and client of one linear layer in one process: the shares
// before truncation sum to the reference W*x + B exactly, and the truncated
// shares to floor(z / 2^f) or one more.
TEST(LinearProtocol, SharesSumToReferenceExactly) {
  std::mt19937_64 rng(11);
  const int f = 12;
  ConvGeom fc;
  fc.fc = true, fc.cin = 37, fc.cout = 10;
  for (const ConvGeom& g : {conv(3, 8, 9, 3, 1, 1), conv(8, 8, 8, 3, 2, 8), conv(6, 12, 7, 1, 2, 3),
                            conv(16, 16, 5, 3, 1, 4), fc}) {
    const size_t nw = size_t(g.weight_numel()), nx = size_t(g.in_numel()), ny = size_t(g.out_numel());
    const auto w = small_words(nw, f, rng), x = small_words(nx, f + 3, rng);
    const auto b = small_words(size_t(g.cout), 2 * f + 2, rng);
    // dealer
    const auto a = random_words(nw, rng), rx = random_words(nx, rng), u_c = random_words(nx, rng);
    const auto k_c = random_words(ny, rng);
    std::vector<u64> a_rx(ny), w_hat(nw);
    linear_forward<u64>(g, a.data(), rx.data(), a_rx.data());
    for (size_t i = 0; i < nw; ++i) w_hat[i] = w[i] + a[i];
    const auto u_s = sub(rx, u_c), k_s = sub(a_rx, k_c);
    // parties
    std::vector<u64> x_hat(nx);
    for (size_t i = 0; i < nx; ++i) x_hat[i] = x[i] + rx[i];
    std::vector<u64> z_s = linear_pre_server(g, w_hat.data(), u_s.data(), k_s.data(), b.data(), 2);
    const std::vector<u64> z_c = linear_pre_client(g, w_hat.data(), u_c.data(), k_c.data());
    linear_online_server(g, w.data(), x_hat.data(), z_s);
    // plaintext reference, exact in __int128
    const std::vector<__int128> wi(w.begin(), w.end()), xi(x.begin(), x.end()), bi(b.begin(), b.end());
    std::vector<__int128> wi_s(nw), xi_s(nx), bi_s(bi.size()), ref(ny);
    for (size_t i = 0; i < nw; ++i) wi_s[i] = int64_t(w[i]);
    for (size_t i = 0; i < nx; ++i) xi_s[i] = int64_t(x[i]);
    for (size_t i = 0; i < bi.size(); ++i) bi_s[i] = int64_t(b[i]);
    linear_forward<__int128>(g, wi_s.data(), xi_s.data(), ref.data());
    add_channel_bias<__int128>(g, bi_s.data(), ref.data());
    auto t_s = z_s, t_c = z_c;
    truncate_shares(Party::Server, t_s, f);
    truncate_shares(Party::Client, t_c, f);
    for (size_t i = 0; i < ny; ++i) {
      ASSERT_EQ(int64_t(z_s[i] + z_c[i]), int64_t(ref[i])) << "element " << i;
      const int64_t diff = int64_t(t_s[i] + t_c[i]) - (int64_t(ref[i]) >> f);
      ASSERT_TRUE(diff == 0 || diff == 1) << "element " << i << " off by " << diff;
    }
  }
}

// Residual add and global sum pool are local: the openings add, so do the masks.
TEST(LinearProtocol, AddAndPoolAreLocal) {
  std::mt19937_64 rng(3);
  const auto x = small_words(48, 20, rng), y = small_words(48, 20, rng);
  const auto rx = random_words(48, rng), ry = random_words(48, rng);
  std::vector<u64> sum_hat(48), mask(48);
  for (size_t i = 0; i < 48; ++i) sum_hat[i] = (x[i] + rx[i]) + (y[i] + ry[i]), mask[i] = rx[i] + ry[i];
  for (size_t i = 0; i < 48; ++i) EXPECT_EQ(sum_hat[i] - mask[i], x[i] + y[i]);
  ConvGeom g;
  g.cin = 3, g.h = 4, g.w = 4;
  const auto pooled_hat = channel_sums(g, sum_hat.data()), pooled_mask = channel_sums(g, mask.data());
  std::vector<u64> plain(48);
  for (size_t i = 0; i < 48; ++i) plain[i] = x[i] + y[i];
  const auto pooled = channel_sums(g, plain.data());
  for (size_t c = 0; c < 3; ++c) EXPECT_EQ(pooled_hat[c] - pooled_mask[c], pooled[c]);
}

// Two sessions over a socketpair: logits within a few units of the fixed-point
// reference, same argmax, bytes and rounds exactly the formula, key blocks
// consumed and refused afterwards.
TEST(Session, InProcessMatchesReferenceAndFormula) {
  for (const std::string spec : {"resnet6:alpha=0.125:cull=S1,S2,S3,S4", "resnet6:alpha=0.125"}) {
    ScratchDir dir("mpc-session");
    arch::Network net = tiny_net(spec);
    if (net.totals().relus > 0) mask_half(net, "layer1.0.relu");
    const FloatModel model = random_float_model(net, 21);
    deal_keys(net, dir.path, 3);
    ServerOptions so;
    so.key_path = dir / "server.key";
    so.threads = 2;
    const ClientOptions co = client_options(dir / "client.key", net.input, 2);
    const InProcess r = run_in_process(model, so, co);
    ASSERT_EQ(r.client_error, "") << spec;
    ASSERT_EQ(r.server_error, "") << spec;
    const ExpectedCost want = expected_cost(compile_program(net));
    ASSERT_EQ(r.client.images.size(), 2u);
    Agreement agree;
    for (const ImageResult& img : r.client.images) {
      const auto ref = reference_logits(net, model, 12, 100 + uint64_t(img.index));
      agree.add(img.logits_fixed, ref, 12);
      // Each layer's truncation may add one unit; later layers amplify it.
      const double tol = logit_tolerance(ref);
      for (size_t k = 0; k < ref.size(); ++k) EXPECT_NEAR(double(img.logits_fixed[k]), double(ref[k]), tol) << spec;
      EXPECT_EQ(img.argmax, argmax(ref)) << spec;
      EXPECT_EQ(int64_t(img.bytes), want.online_bytes) << spec;
      EXPECT_EQ(img.rounds, want.rounds) << spec;
      EXPECT_EQ(int64_t(img.framing_bytes), want.framing_bytes) << spec;
    }
    EXPECT_EQ(agree.argmax_equal, 2);
    EXPECT_EQ(agree.failures, 0);
    EXPECT_LT(agree.max_abs_diff, 0.05);
    EXPECT_EQ(int64_t(r.client.client.online.bytes_sent), 2 * want.client_sent);
    EXPECT_EQ(int64_t(r.client.server.online.bytes_sent), 2 * want.server_sent);
    EXPECT_EQ(r.client.server.online.rounds, 2 * want.rounds);
    EXPECT_EQ(r.server.server.inferences, 2);
    // one block left: a session for two more is refused by both
    const InProcess again = run_in_process(model, so, co);
    EXPECT_TRUE(contains(again.client_error, "only 1 of 3 key blocks are unused")) << again.client_error;
    EXPECT_TRUE(contains(again.server_error, "deal new keys")) << again.server_error;
  }
}

// A server whose weights do not fit its keys' architecture stops before the
// handshake and tells the client why.
TEST(Session, ServerModelMismatchReachesTheClient) {
  ScratchDir dir("mpc-session");
  const arch::Network net = tiny_net();
  FloatModel model = random_float_model(net, 2);
  model.params.erase("layer3.0.conv1.weight");
  deal_keys(net, dir.path, 1);
  ServerOptions so;
  so.key_path = dir / "server.key";
  const InProcess r = run_in_process(model, so, client_options(dir / "client.key", net.input, 1));
  EXPECT_TRUE(contains(r.server_error, "no parameter 'layer3.0.conv1.weight'")) << r.server_error;
  EXPECT_TRUE(contains(r.client_error, "the peer failed: server: model has no parameter")) << r.client_error;
  // the wrong party's key file is refused with what is expected
  so.key_path = dir / "client.key";
  const InProcess w = run_in_process(random_float_model(net, 2), so, client_options(dir / "client.key", net.input, 1));
  EXPECT_TRUE(contains(w.server_error, "holds client keys; the server needs server.key")) << w.server_error;
}
