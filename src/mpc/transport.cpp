#include "mpc/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace dr::mpc {

namespace {

constexpr uint32_t kFrameMagic = 0x464d5244;  // "DRMF" little endian
constexpr uint64_t kMaxPayload = uint64_t(1) << 36;
constexpr uint64_t kMaxErrorPayload = uint64_t(1) << 16;
// A frame must arrive (or leave) within the timeout plus its size at this
// rate, so a peer that trickles a byte now and then cannot keep a party alive
// for ever; the timeout alone is on progress.
constexpr double kMinBytesPerSecond = 1 << 20;
// A payload's buffer grows as its bytes arrive, so a peer must send what it
// announces before this party holds the memory.
constexpr size_t kReadChunk = size_t(16) << 20;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int remaining_ms(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms <= 0 ? 0 : static_cast<int>(std::min<long long>(ms, 1 << 30));
}

Clock::time_point deadline_after(double s) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
}

Clock::time_point frame_deadline(double timeout_s, uint64_t bytes) {
  return deadline_after(timeout_s + static_cast<double>(bytes) / kMinBytesPerSecond);
}

template <class T>
void put_le(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>((uint64_t(v) >> (8 * i)) & 0xff);
}
uint64_t get_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small shares must not wait for Nagle
}

std::string errno_text(int e) { return std::strerror(e); }

std::string secs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

}  // namespace

const char* msg_type_name(MsgType t) {
  switch (t) {
    case MsgType::Hello: return "hello";
    case MsgType::Setup: return "setup";
    case MsgType::Input: return "input";
    case MsgType::LinearShare: return "linear-share";
    case MsgType::GateShare: return "gate-share";
    case MsgType::Records: return "records";
    case MsgType::Error: return "error";
    case MsgType::Ready: return "ready";
  }
  return "unknown";
}

Traffic Traffic::operator-(const Traffic& o) const {
  Traffic d;
  d.payload_sent = payload_sent - o.payload_sent;
  d.payload_received = payload_received - o.payload_received;
  d.framing_sent = framing_sent - o.framing_sent;
  d.framing_received = framing_received - o.framing_received;
  d.messages_sent = messages_sent - o.messages_sent;
  d.messages_received = messages_received - o.messages_received;
  d.rounds = rounds - o.rounds;
  d.wait_s = wait_s - o.wait_s;
  return d;
}

Transport::Transport(int fd, const TransportOptions& options) : fd_(fd), options_(options) {
  if (!(options_.timeout_s > 0)) throw std::invalid_argument("transport timeout must be positive seconds");
  set_nodelay(fd_);
  writer_ = std::thread([this] { writer_loop(); });
}

Transport::~Transport() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  // Unblocks a writer stuck on a peer that stopped reading; normal sessions
  // have flushed (close_gracefully) before they get here.
  ::shutdown(fd_, SHUT_RDWR);
  writer_.join();
  ::close(fd_);
}

void Transport::writer_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    std::vector<uint8_t> frame = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    std::string error;
    size_t done = 0;
    auto deadline = deadline_after(options_.timeout_s);
    const auto whole = frame_deadline(options_.timeout_s, frame.size());
    while (done < frame.size() && error.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      const int r = ::poll(&p, 1, std::min(remaining_ms(deadline), remaining_ms(whole)));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) {
        error = whole <= deadline ? "the peer took a " + std::to_string(frame.size()) +
                                            "-byte frame too slowly (under 1 MiB/s after " + secs(options_.timeout_s) + ")"
                                      : "the peer took no data for " + secs(options_.timeout_s);
        break;
      }
      const ssize_t w = ::send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (w < 0) error = "send failed: " + errno_text(errno) + " (the peer closed the connection?)";
      if (w > 0) {
        done += static_cast<size_t>(w);
        deadline = deadline_after(options_.timeout_s);  // the timeout is on progress
      }
    }
    lock.lock();
    writing_ = false;
    if (!error.empty()) {
      send_error_ = error;
      queue_.clear();
    }
    cv_.notify_all();
  }
}

void Transport::check_send_failure() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!send_error_.empty()) throw std::runtime_error("connection to the peer lost: " + send_error_);
}

void Transport::send(MsgType type, std::vector<uint8_t> payload) {
  check_send_failure();
  std::vector<uint8_t> frame(kFrameHeaderBytes + payload.size());
  put_le<uint32_t>(frame.data(), kFrameMagic);
  put_le<uint16_t>(frame.data() + 4, kWireVersion);
  put_le<uint16_t>(frame.data() + 6, static_cast<uint16_t>(type));
  put_le<uint64_t>(frame.data() + 8, send_seq_++);
  put_le<uint64_t>(frame.data() + 16, payload.size());
  if (!payload.empty()) std::memcpy(frame.data() + kFrameHeaderBytes, payload.data(), payload.size());
  traffic_.payload_sent += payload.size();
  traffic_.framing_sent += kFrameHeaderBytes;
  ++traffic_.messages_sent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(frame));
  }
  cv_.notify_all();
}

void Transport::read_exact(uint8_t* out, size_t n, const char* what, Clock::time_point whole) {
  size_t done = 0;
  auto deadline = deadline_after(options_.timeout_s);
  while (done < n) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, std::min(remaining_ms(deadline), remaining_ms(whole)));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0 && whole <= deadline)
      throw std::runtime_error(std::string("the peer sent ") + what + " too slowly (under 1 MiB/s after " +
                               secs(options_.timeout_s) + "): it hangs or misbehaves");
    if (r == 0)
      throw std::runtime_error(std::string("no data from the peer for ") + secs(options_.timeout_s) +
                               " while waiting for " + what + " (the peer hangs or died)");
    const ssize_t got = ::recv(fd_, out + done, n - done, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got == 0)
      throw std::runtime_error(std::string("connection to the peer lost: it closed the connection while this party "
                                           "waited for ") + what + (done ? " (the frame is truncated)" : ""));
    if (got < 0)
      throw std::runtime_error(std::string("connection to the peer lost while waiting for ") + what + ": " +
                               errno_text(errno) + (errno == ECONNRESET ? " (the peer died?)" : ""));
    done += static_cast<size_t>(got);
    deadline = deadline_after(options_.timeout_s);
  }
}

std::vector<uint8_t> Transport::recv(MsgType type) { return recv_frame(type, nullptr); }

std::vector<uint8_t> Transport::recv(MsgType type, size_t bytes) { return recv_frame(type, &bytes); }

std::vector<uint8_t> Transport::recv_frame(MsgType type, const size_t* expected_bytes) {
  const auto t0 = Clock::now();
  const std::string what = std::string("a ") + msg_type_name(type) + " message";
  uint8_t h[kFrameHeaderBytes];
  try {
    read_exact(h, sizeof h, what.c_str(), frame_deadline(options_.timeout_s, sizeof h));
  } catch (...) {
    traffic_.wait_s += seconds_since(t0);
    check_send_failure();
    throw;
  }
  const auto magic = static_cast<uint32_t>(get_le(h, 4));
  const auto version = static_cast<uint16_t>(get_le(h + 4, 2));
  const auto got = static_cast<MsgType>(get_le(h + 6, 2));
  const uint64_t seq = get_le(h + 8, 8), len = get_le(h + 16, 8);
  if (magic != kFrameMagic) throw std::runtime_error("the peer sent a frame with a bad magic number: not a deepreduce party");
  if (version != kWireVersion)
    throw std::runtime_error("the peer speaks wire version " + std::to_string(version) + ", this party " +
                             std::to_string(kWireVersion));
  if (seq != recv_seq_)
    throw std::runtime_error("frame out of sequence: expected #" + std::to_string(recv_seq_) + ", got #" +
                             std::to_string(seq));
  // Everything the header says is checked before the payload is read.
  const bool is_error = got == MsgType::Error && type != MsgType::Error;
  if (!is_error && got != type)
    throw std::runtime_error(std::string("protocol error: expected ") + msg_type_name(type) + " message, got " +
                             msg_type_name(got) + " (type " + std::to_string(unsigned(got)) + ")");
  if (len > (is_error ? kMaxErrorPayload : kMaxPayload))
    throw std::runtime_error("the peer announced " + std::to_string(len) + " bytes for a frame of type " + msg_type_name(got) +
                             " (at most " + std::to_string(is_error ? kMaxErrorPayload : kMaxPayload) + ")");
  if (!is_error && expected_bytes && len != *expected_bytes)
    throw std::runtime_error(std::string("protocol error: ") + msg_type_name(type) + " message of " +
                             std::to_string(len) + " bytes, expected " + std::to_string(*expected_bytes));
  std::vector<uint8_t> payload;
  const auto whole = frame_deadline(options_.timeout_s, len);
  while (payload.size() < len) {
    const size_t done = payload.size(), chunk = static_cast<size_t>(std::min<uint64_t>(len - done, kReadChunk));
    payload.resize(done + chunk);
    read_exact(payload.data() + done, chunk, what.c_str(), whole);
  }
  traffic_.wait_s += seconds_since(t0);
  ++recv_seq_;
  traffic_.payload_received += len;
  traffic_.framing_received += kFrameHeaderBytes;
  ++traffic_.messages_received;
  if (is_error) throw std::runtime_error("the peer failed: " + std::string(payload.begin(), payload.end()));
  return payload;
}

void Transport::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const bool done = cv_.wait_for(lock, std::chrono::duration<double>(options_.timeout_s + 1),
                                 [&] { return (queue_.empty() && !writing_) || !send_error_.empty(); });
  if (!send_error_.empty()) throw std::runtime_error("connection to the peer lost: " + send_error_);
  if (!done) throw std::runtime_error("could not send to the peer within the timeout");
}

void Transport::close_gracefully() {
  flush();
  end_stream_and_drain(options_.timeout_s);
}

void Transport::end_stream_and_drain(double seconds) {
  ::shutdown(fd_, SHUT_WR);
  const auto deadline = deadline_after(seconds);
  uint8_t buf[4096];
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    const ssize_t got = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return;
  }
}

void Transport::send_error(const std::string& message) noexcept {
  try {
    send(MsgType::Error, std::vector<uint8_t>(message.begin(), message.end()));
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(2),
                   [&] { return (queue_.empty() && !writing_) || !send_error_.empty(); });
    }
    // The peer may have sent frames before it knew: read until it closes (it
    // does once it has read the error), so no reset drops the Error frame.
    end_stream_and_drain(std::min(2.0, options_.timeout_s));
  } catch (...) {
  }
}

std::unique_ptr<Transport> Transport::connect(const std::string& host, int port, const TransportOptions& options) {
  const auto deadline = deadline_after(options.timeout_s);
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) throw std::runtime_error("cannot resolve " + where + ": " + gai_strerror(gai));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  std::string last = "no address";
  do {
    for (addrinfo* a = res; a; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
      if (fd < 0) {
        last = errno_text(errno);
        continue;
      }
      int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        const int r = ::poll(&p, 1, std::max(1, std::min(1000, remaining_ms(deadline))));
        socklen_t len = sizeof err;
        if (r <= 0) err = ETIMEDOUT;
        else ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      if (err == 0) {
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        return std::make_unique<Transport>(fd, options);
      }
      last = errno_text(err);
      ::close(fd);
    }
    ::usleep(50 * 1000);  // the server may not listen yet
  } while (remaining_ms(deadline) > 0);
  throw std::runtime_error("cannot connect to the server at " + where + " within " +
                           secs(options.timeout_s) + ": " + last);
}

Listener::Listener(const std::string& bind_address, int port) {
  if (port < 0 || port > 65535) throw std::invalid_argument("port " + std::to_string(port) + ": accepted 0..65535");
  // An empty address would mean every interface to getaddrinfo: say so explicitly instead.
  if (bind_address.empty())
    throw std::invalid_argument("bind address is empty: accepted an address of this machine (127.0.0.1: this "
                                "machine only; 0.0.0.0 or :: every interface)");
  const std::string& addr = bind_address;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int gai = ::getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) throw std::runtime_error("cannot listen on " + addr + ": " + gai_strerror(gai));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  fd_ = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd_ < 0) throw std::runtime_error("cannot create a socket: " + errno_text(errno));
  const int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd_, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd_, 4) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::runtime_error("cannot listen on " + addr + ":" + std::to_string(port) + ": " + errno_text(e));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<Transport> Listener::accept(const TransportOptions& options, double timeout_s) {
  const auto deadline = deadline_after(timeout_s);
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0)
      throw std::runtime_error("no client connected to port " + std::to_string(port_) + " within " +
                               secs(timeout_s));
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return std::make_unique<Transport>(fd, options);
    if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
      throw std::runtime_error("accept failed: " + errno_text(errno));
  }
}

}  // namespace dr::mpc
