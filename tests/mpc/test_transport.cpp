// The transport: frames, counters, large simultaneous sends, and every way
// a connection ends in an error instead of a hang.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "mpc/transport.h"
#include "mpc_test_util.h"

using namespace dr::mpc;
using namespace dr::mpc::test;

namespace {

struct Pair {
  std::unique_ptr<Transport> a, b;
  explicit Pair(double timeout_s = 5) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
    TransportOptions o;
    o.timeout_s = timeout_s;
    a = std::make_unique<Transport>(fds[0], o);
    b = std::make_unique<Transport>(fds[1], o);
  }
};

// A raw socketpair end for writing hand-made frames.
std::unique_ptr<Transport> with_raw_peer(int& raw, double timeout_s = 2) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
  raw = fds[1];
  TransportOptions o;
  o.timeout_s = timeout_s;
  return std::make_unique<Transport>(fds[0], o);
}

std::vector<uint8_t> frame(uint32_t magic, uint16_t version, uint16_t type, uint64_t seq, uint64_t len) {
  std::vector<uint8_t> f(24);
  std::memcpy(f.data(), &magic, 4);
  std::memcpy(f.data() + 4, &version, 2);
  std::memcpy(f.data() + 6, &type, 2);
  std::memcpy(f.data() + 8, &seq, 8);
  std::memcpy(f.data() + 16, &len, 8);
  return f;
}
constexpr uint32_t kMagic = 0x464d5244;

}  // namespace

TEST(Transport, CountsPayloadAndFramingApart) {
  Pair p;
  p.a->send(MsgType::Input, std::vector<uint8_t>(100, 7));
  p.a->send(MsgType::LinearShare, {});
  EXPECT_EQ(p.b->recv(MsgType::Input, 100), std::vector<uint8_t>(100, 7));
  EXPECT_TRUE(p.b->recv(MsgType::LinearShare).empty());
  EXPECT_EQ(p.a->traffic().payload_sent, 100u);
  EXPECT_EQ(p.a->traffic().framing_sent, 2 * kFrameHeaderBytes);
  EXPECT_EQ(p.b->traffic().payload_received, 100u);
  EXPECT_EQ(p.b->traffic().framing_received, 2 * kFrameHeaderBytes);
  EXPECT_EQ(p.b->traffic().messages_received, 2u);
}

// Both ends send 48 MB before either reads: the send threads keep it from
// deadlocking on full socket buffers.
TEST(Transport, LargeSimultaneousExchangeDoesNotDeadlock) {
  Pair p(20);
  const std::vector<uint8_t> big(48u << 20, 1);
  std::vector<uint8_t> got_a, got_b;
  std::thread t([&] {
    p.b->send(MsgType::GateShare, big);
    got_b = p.b->recv(MsgType::GateShare);
  });
  p.a->send(MsgType::GateShare, big);
  got_a = p.a->recv(MsgType::GateShare);
  t.join();
  EXPECT_EQ(got_a.size(), big.size());
  EXPECT_EQ(got_b.size(), big.size());
}

TEST(Transport, WrongTypeSizeMagicVersionAndSequenceAreErrors) {
  {
    Pair p;
    p.a->send(MsgType::Input, {1, 2});
    expect_error([&] { p.b->recv(MsgType::LinearShare); }, "expected linear-share message, got input");
  }
  {
    Pair p;
    p.a->send(MsgType::Input, {1, 2});
    expect_error([&] { p.b->recv(MsgType::Input, 8); }, "of 2 bytes, expected 8");
  }
  int raw = -1;
  {
    auto t = with_raw_peer(raw);
    const auto f = frame(0x12345678, kWireVersion, 3, 0, 0);
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Input); }, "bad magic");
    ::close(raw);
  }
  {
    auto t = with_raw_peer(raw);
    const auto f = frame(kMagic, 99, 3, 0, 0);
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Input); }, "wire version 99");
    ::close(raw);
  }
  {
    auto t = with_raw_peer(raw);
    const auto f = frame(kMagic, kWireVersion, 3, 5, 0);
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Input); }, "out of sequence");
    ::close(raw);
  }
  {
    auto t = with_raw_peer(raw);
    auto f = frame(kMagic, kWireVersion, 3, 0, 100);
    f.resize(24 + 10);  // 10 of the 100 payload bytes, then the peer goes away
    ASSERT_EQ(::write(raw, f.data(), f.size()), 34);
    ::close(raw);
    expect_error([&] { t->recv(MsgType::Input); }, "truncated");
  }
}

TEST(Transport, ClosedOrSilentPeerEndsInErrorNotHang) {
  {
    Pair p;
    p.a.reset();
    expect_error([&] { p.b->recv(MsgType::Input); }, "closed the connection");
  }
  {
    Pair p(0.3);
    const auto t0 = std::chrono::steady_clock::now();
    expect_error([&] { p.b->recv(MsgType::Input); }, "no data from the peer for 0.3 s");
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  }
  {
    Pair p;
    p.a->send_error("server: something broke");
    expect_error([&] { p.b->recv(MsgType::Input); }, "the peer failed: server: something broke");
  }
}

TEST(Transport, ConnectRetriesUntilTheServerListensAndTimesOut) {
  int port = 0;
  {
    Listener probe("127.0.0.1", 0);  // find a free port, then free it
    port = probe.port();
  }
  TransportOptions o;
  o.timeout_s = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { Transport::connect("127.0.0.1", port, o); }, "cannot connect");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);

  // a client that starts before the server listens still gets through
  std::unique_ptr<Transport> client;
  std::thread t([&] {
    TransportOptions slow;
    slow.timeout_s = 5;
    client = Transport::connect("127.0.0.1", port, slow);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Listener l("127.0.0.1", port);
  auto server = l.accept(o, 5);
  t.join();
  ASSERT_TRUE(client);
  client->send(MsgType::Hello, {42});
  EXPECT_EQ(server->recv(MsgType::Hello), std::vector<uint8_t>{42});
}

// An empty bind address meant every interface to getaddrinfo: refused instead.
TEST(Transport, EmptyBindAddressIsRefused) {
  try {
    Listener l("", 0);
    ADD_FAILURE() << "listening on '' was accepted (port " << l.port() << ")";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "bind address is empty")) << e.what();
    EXPECT_TRUE(contains(e.what(), "127.0.0.1")) << e.what();
  }
}

// A peer that sends a byte now and then resets the progress timeout every
// time; the frame's own deadline (timeout + size at 1 MiB/s) still ends it.
TEST(Transport, TricklingPeerIsCutOffByTheFrameDeadline) {
  int raw = -1;
  auto t = with_raw_peer(raw, 0.6);
  const auto f = frame(kMagic, kWireVersion, 3, 0, 64);
  ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    const uint8_t byte = 0;
    for (int i = 0; i < 64 && !stop; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (::write(raw, &byte, 1) != 1) break;
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { t->recv(MsgType::Input); }, "too slowly");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stop = true;
  trickle.join();
  ::close(raw);
  EXPECT_LT(took, 2.0);  // 64 bytes at 5 per second would take 13 s
}

// The header is checked before any payload memory is taken: a peer cannot
// make this party allocate what it announces.
TEST(Transport, AnnouncedSizeIsCheckedBeforeThePayloadIsRead) {
  int raw = -1;
  {
    auto t = with_raw_peer(raw);
    const auto f = frame(kMagic, kWireVersion, 3, 0, uint64_t(1) << 35);  // 32 GiB, within the cap
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Input, 8); }, "of 34359738368 bytes, expected 8");
    ::close(raw);
  }
  {
    auto t = with_raw_peer(raw);
    const auto f = frame(kMagic, kWireVersion, 7, 0, uint64_t(1) << 30);  // an error frame of 1 GiB
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Input); }, "announced 1073741824 bytes for a frame of type error");
    ::close(raw);
  }
  {
    // an unknown-size message whose bytes never come: no 32 GiB buffer, just the timeout
    auto t = with_raw_peer(raw, 0.3);
    const auto f = frame(kMagic, kWireVersion, 2, 0, uint64_t(1) << 35);
    ASSERT_EQ(::write(raw, f.data(), f.size()), 24);
    expect_error([&] { t->recv(MsgType::Setup); }, "no data from the peer");
    ::close(raw);
  }
}
