#pragma once
// The two parties' channel: one TCP connection over POSIX sockets. Why not a
// messaging library: the protocol needs exactly one point-to-point stream,
// finite timeouts on every wait (poll(2)), and byte counts we can trust; the
// socket API gives all three with no dependency.
//
// Frames: u32 magic "DRMF", u16 version, u16 type, u64 sequence number (per
// direction, from 0), u64 payload length, then the payload (24 bytes of
// framing per message, counted apart from the payload). Sends go through a
// queue drained by a thread of their own, so two parties that send large
// messages to each other at once cannot deadlock on full socket buffers.
// Every wait (connect, accept, receive, a stalled send) ends after the
// timeout, and a whole frame must move within the timeout plus its size at
// 1 MiB/s (a peer trickling bytes cannot hold a party); the header is checked
// (type, expected size, a cap) before any payload memory is taken, and the
// payload buffer grows only as its bytes arrive. A closed connection, a truncated frame or a wrong magic, version,
// type or sequence number ends the party with a std::runtime_error.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dr::mpc {

constexpr uint16_t kWireVersion = 1;
constexpr size_t kFrameHeaderBytes = 24;

enum class MsgType : uint16_t {
  Hello = 1,        // handshake, both ways
  Setup = 2,        // server -> client: normalisation and W^ = W + A of every linear layer
  Input = 3,        // client -> server: x^ = x + r0
  LinearShare = 4,  // both ways: a share of trunc(W*x + b) + r_out
  GateShare = 5,    // both ways: shares a gate step opens (ReLU: relu(x) + r_out of the live elements)
  Records = 6,      // server -> client: its measurements (JSON)
  Error = 7,        // either way: the sender failed; the payload says why
  Ready = 8,        // server -> client: preprocessing of the next inference done (not online traffic)
};
const char* msg_type_name(MsgType t);

struct TransportOptions {
  double timeout_s = 60;  // every connect, accept, receive and stalled send
};

// Counters of one direction each; bytes are payload and framing apart.
struct Traffic {
  uint64_t payload_sent = 0, payload_received = 0, framing_sent = 0, framing_received = 0;
  uint64_t messages_sent = 0, messages_received = 0;
  int64_t rounds = 0;  // counted by the protocol: one per exchange (or one-way message)
  double wait_s = 0;   // time blocked in receive, waiting for the peer
  Traffic operator-(const Traffic& o) const;
};

class Transport {
 public:
  // Takes ownership of a connected stream socket.
  Transport(int fd, const TransportOptions& options);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Connects to host:port, retrying until the timeout (the server may not
  // listen yet).
  static std::unique_ptr<Transport> connect(const std::string& host, int port, const TransportOptions& options);

  // Queues a frame; throws if an earlier send failed.
  void send(MsgType type, std::vector<uint8_t> payload);
  // The next frame, which must be of `type` (and `bytes` long when given).
  std::vector<uint8_t> recv(MsgType type);
  std::vector<uint8_t> recv(MsgType type, size_t bytes);

  void count_round() { ++traffic_.rounds; }
  const Traffic& traffic() const { return traffic_; }

  // Waits until every queued frame is written; throws on failure or timeout.
  void flush();
  // flush(), shutdown(SHUT_WR), then waits (bounded) for the peer to close,
  // so no unread data makes the kernel reset the connection under the peer.
  void close_gracefully();
  // Best effort, never throws: tells the peer why this party stops (an Error frame).
  void send_error(const std::string& message) noexcept;

 private:
  void writer_loop();
  std::vector<uint8_t> recv_frame(MsgType type, const size_t* expected_bytes);
  void read_exact(uint8_t* out, size_t n, const char* what, std::chrono::steady_clock::time_point whole);
  void check_send_failure();
  // shutdown(SHUT_WR), then reads and drops until the peer closes, for at
  // most `seconds`: closing with the peer's bytes unread would make the
  // kernel reset the connection, which can drop what this side sent last.
  void end_stream_and_drain(double seconds);

  int fd_;
  TransportOptions options_;
  Traffic traffic_;
  uint64_t send_seq_ = 0, recv_seq_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> queue_;
  bool stop_ = false, writing_ = false;
  std::string send_error_;  // set by the writer thread
  std::thread writer_;
};

// A listening socket for the server.
class Listener {
 public:
  // port 0: any free port (see port()). bind_address "0.0.0.0": every
  // interface; "" is refused (std::invalid_argument), never read as "every".
  Listener(const std::string& bind_address, int port);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int port() const { return port_; }
  // One connection; throws after timeout_s without a client.
  std::unique_ptr<Transport> accept(const TransportOptions& options, double timeout_s);

 private:
  int fd_ = -1, port_ = 0;
};

}  // namespace dr::mpc
