// The Prg of prg.h: OpenSSL's AES-128-CTR keystream (mpc/aes.h), served
// from a buffer to small reads; the OS seed from getrandom(2).
#include "mpc/prg.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <openssl/crypto.h>

#include "mpc/aes.h"

namespace dr::mpc {

namespace {

// n bytes from getrandom(2), retried on EINTR and short reads (a read of more
// than 256 bytes may be cut by a signal); any other failure is fatal: no Prg
// without real entropy.
void os_random(uint8_t* out, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("Prg: getrandom(2) failed, the OS gives no randomness: ") +
                               std::strerror(errno));
    }
    out += got;
    n -= size_t(got);
  }
}

}  // namespace

struct Prg::Impl {
  static constexpr size_t kBuf = 4096;  // keystream served to small reads
  Aes128Ctr ctr;
  uint8_t buf[kBuf];
  size_t pos = kBuf;  // buf[pos..kBuf) not yet handed out
  explicit Impl(const uint8_t seed[16]) : ctr(seed, kZeroIv) {}
  ~Impl() { OPENSSL_cleanse(buf, sizeof buf); }
  static constexpr uint8_t kZeroIv[16] = {};
};

Prg::Prg() {
  uint8_t seed[16];
  os_random(seed, sizeof seed);
  impl_ = new Impl(seed);
  OPENSSL_cleanse(seed, sizeof seed);
}

Prg::Prg(const uint8_t seed[16]) : impl_(new Impl(seed)) {}

Prg::~Prg() { delete impl_; }

Prg::Prg(Prg&& o) noexcept : impl_(o.impl_) { o.impl_ = nullptr; }

Prg& Prg::operator=(Prg&& o) noexcept {
  if (this != &o) {
    delete impl_;
    impl_ = o.impl_;
    o.impl_ = nullptr;
  }
  return *this;
}

void Prg::bytes(uint8_t* out, size_t n) {
  if (!impl_) throw std::runtime_error("Prg: used after being moved from");
  if (n == 0) return;  // out may be null then (an empty vector's data())
  Impl& I = *impl_;
  const size_t take = std::min(n, Impl::kBuf - I.pos);
  std::memcpy(out, I.buf + I.pos, take);
  I.pos += take;
  out += take;
  n -= take;
  if (n == 0) return;
  if (n >= Impl::kBuf) {  // bulk: straight from AES-CTR, the stream continues exactly
    I.ctr.keystream(out, n);
    return;
  }
  I.ctr.keystream(I.buf, Impl::kBuf);
  std::memcpy(out, I.buf, n);
  I.pos = n;
}

u64 Prg::next_u64() {
  u64 v;
  if (impl_ && Impl::kBuf - impl_->pos >= 8) {
    std::memcpy(&v, impl_->buf + impl_->pos, 8);
    impl_->pos += 8;
  } else {
    bytes(reinterpret_cast<uint8_t*>(&v), 8);
  }
  return v;
}

void Prg::fill(u64* out, size_t n) { bytes(reinterpret_cast<uint8_t*>(out), n * sizeof(u64)); }

}  // namespace dr::mpc
