#include "mpc/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "mpc/gate.h"
#include "mpc/key_stream.h"
#include "util/fs.h"

namespace dr::mpc {

namespace {

constexpr char kMagic[8] = {'D', 'R', 'M', 'P', 'C', 'K', 'E', 'Y'};
constexpr size_t kPrefix = 16;   // magic, version, header length
constexpr size_t kSum = 32;      // SHA-256
constexpr uint32_t kMaxHeader = 256u << 20;

void put(std::string& s, const void* p, size_t n) { s.append(static_cast<const char*>(p), n); }
template <class T>
void put_le(std::string& s, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) s.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}

// Bounds-checked little-endian reader over the header bytes.
struct Cursor {
  const uint8_t* p;
  size_t n, at = 0;
  const uint8_t* take(size_t k) {
    if (n - at < k) throw std::runtime_error("header ends early");
    at += k;
    return p + at - k;
  }
  uint64_t le(size_t k) {
    const uint8_t* b = take(k);
    uint64_t v = 0;
    for (size_t i = 0; i < k; ++i) v |= uint64_t(b[i]) << (8 * i);
    return v;
  }
};

std::string encode_body(const KeyHeader& h) {
  std::string s;
  put_le<uint8_t>(s, static_cast<uint8_t>(h.party));
  put_le<uint8_t>(s, kRingBits);
  put_le<uint8_t>(s, static_cast<uint8_t>(h.frac_bits));
  put_le<uint8_t>(s, 0);
  put(s, h.nonce.data(), h.nonce.size());
  put_le<uint64_t>(s, h.count);
  put_le<uint64_t>(s, h.global_bytes);
  put_le<uint64_t>(s, h.block_bytes);
  put(s, h.model_hash.data(), h.model_hash.size());
  put_le<uint32_t>(s, static_cast<uint32_t>(h.architecture.size()));
  s += h.architecture;
  return s;
}

std::string encode_prefix(uint32_t version, uint32_t body_len) {
  std::string s(kMagic, sizeof kMagic);
  put_le<uint32_t>(s, version);
  put_le<uint32_t>(s, body_len);
  return s;
}

// Checksum of a block (index) or of the global section (index = ~0).
Hash section_sum(const KeyHeader& h, uint64_t index, const uint8_t* data, size_t n) {
  std::string pre = "DRMPCBLK";
  put(pre, h.nonce.data(), h.nonce.size());
  put_le<uint8_t>(pre, static_cast<uint8_t>(h.party));
  put_le<uint64_t>(pre, index);
  return util::Sha256().update(pre.data(), pre.size()).update(data, n).final();
}

constexpr uint64_t kGlobalIndex = ~uint64_t(0);

void pread_all(int fd, uint8_t* out, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      throw std::runtime_error("key file '" + path + "': read failed at byte " + std::to_string(offset) + ": " +
                               (r == 0 ? std::string("unexpected end of file") : std::strerror(errno)));
    out += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

}  // namespace

const char* party_name(Party p) { return p == Party::Server ? "server" : "client"; }

BlockLayout block_layout(const Program& program, Party party) {
  BlockLayout l;
  size_t at = 0;
  if (party == Party::Client) {
    l.input_mask = at;
    at += 8 * size_t(program.input_numel());
    l.seed = at;
    at += sizeof(Seed);
  } else {
    for (int i : program.linear_steps) {
      const ConvGeom& g = program.steps[size_t(i)].geom;
      BlockLayout::LinearPart p;
      p.u = at;
      p.k = p.u + 8 * size_t(g.in_numel());
      p.m = p.k + 8 * size_t(g.out_numel());
      at = p.m + 8 * size_t(g.out_numel());
      l.linear.push_back(p);
    }
  }
  for (int i : program.gate_steps) {
    const Step& s = program.steps[size_t(i)];
    l.gates.push_back(at);
    at += s.live.size() * gate_of(s).key_bytes();
  }
  if (party == Party::Client) {
    l.output_mask = at;
    at += 8 * size_t(program.wire_numel[size_t(program.output_wire)]);
  }
  l.bytes = at;
  return l;
}

std::vector<uint64_t> step_key_bytes(const Program& program, Party party) {
  const bool client = party == Party::Client;
  std::vector<uint64_t> out;
  for (const Step& s : program.steps) {
    uint64_t b = 0;
    switch (s.kind) {
      case StepKind::Input: b = client ? 8 * uint64_t(program.input_numel()) + sizeof(Seed) : 0; break;
      case StepKind::Linear: b = client ? 0 : 8 * uint64_t(s.geom.in_numel() + 2 * s.geom.out_numel()); break;
      case StepKind::Gate: b = uint64_t(s.live_count) * gate_of(s).key_bytes(); break;
      case StepKind::Output: b = client ? 8 * uint64_t(program.wire_numel[size_t(program.output_wire)]) : 0; break;
      case StepKind::Add:
      case StepKind::SumPool:
      case StepKind::PairDiff:
      case StepKind::PairMax: break;
    }
    out.push_back(b);
  }
  return out;
}

uint32_t key_format_version(const Program& program) {
  uint32_t v = kOldestKeyFormatVersion;
  for (int i : program.gate_steps) v = std::max(v, gate_of(program.steps[size_t(i)]).key_format_version());
  return v;
}

size_t global_bytes(const Program& program, Party party) {
  if (party == Party::Client) return 0;
  size_t n = 0;
  for (int i : program.linear_steps) n += 8 * size_t(program.steps[size_t(i)].geom.weight_numel());
  for (int i : program.gate_steps) {
    const Step& s = program.steps[size_t(i)];
    n += 8 * size_t(gate_of(s).session_words(s));
  }
  return n;
}

uint64_t key_file_bytes(const KeyHeader& h) {
  const uint64_t fixed = kPrefix + encode_body(h).size() + kSum, max = ~uint64_t(0);
  if (h.block_bytes > max - kSum || h.global_bytes > max - fixed - 2 * kSum) return max;
  const uint64_t head = fixed + h.global_bytes + kSum, per = h.block_bytes + kSum;
  if (h.count > (max - head) / per) return max;
  return head + h.count * per;
}

std::vector<ClientLinearShares> derive_client_shares(const Program& program, const Seed& seed) {
  Prg prg(seed.data());
  std::vector<ClientLinearShares> out(program.linear_steps.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const ConvGeom& g = program.linear(int(i)).geom;
    out[i].u.resize(size_t(g.in_numel()));
    out[i].k.resize(size_t(g.out_numel()));
    out[i].m.resize(size_t(g.out_numel()));
    prg.fill(out[i].u.data(), out[i].u.size());
    prg.fill(out[i].k.data(), out[i].k.size());
    prg.fill(out[i].m.data(), out[i].m.size());
  }
  return out;
}

// --- writer ------------------------------------------------------------------

KeyWriter::KeyWriter(const std::string& path, const KeyHeader& header, double stream_timeout_s)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())), header_(header) {
  if (is_named_pipe(path)) {
    pipe_ = std::make_unique<PipeWriter>(path, stream_timeout_s, "key stream '" + path + "'");
  } else {
    util::make_dirs(std::filesystem::path(path).parent_path().string());
    // 0600: a key file is a party's secret.
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("cannot write key file '" + tmp_ + "': " + std::strerror(errno));
  }
  const std::string body = encode_body(header_);
  const std::string head = encode_prefix(header_.version, static_cast<uint32_t>(body.size())) + body;
  const Hash sum = sha256(head.data(), head.size());
  write(reinterpret_cast<const uint8_t*>(head.data()), head.size());
  write(sum.data(), sum.size());
}

KeyWriter::~KeyWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !pipe_) std::remove(tmp_.c_str());
}

double KeyWriter::stream_wait_s() const { return pipe_ ? pipe_->wait_s() : 0.0; }

void KeyWriter::write(const uint8_t* data, size_t n) {
  if (pipe_) {
    pipe_->write(data, n);
    written_ += n;
    return;
  }
  while (n > 0) {
    const ssize_t w = ::write(fd_, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error("cannot write key file '" + tmp_ + "': " + std::strerror(errno));
    data += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void KeyWriter::write_global(const uint8_t* data, size_t n) {
  if (global_done_ || n != header_.global_bytes)
    throw std::logic_error("KeyWriter: global section of " + std::to_string(n) + " bytes, header says " +
                           std::to_string(header_.global_bytes));
  write(data, n);
  const Hash sum = section_sum(header_, kGlobalIndex, data, n);
  write(sum.data(), sum.size());
  global_done_ = true;
}

void KeyWriter::write_block(const uint8_t* data, size_t n) {
  if (!global_done_ || n != header_.block_bytes || blocks_ >= header_.count)
    throw std::logic_error("KeyWriter: block " + std::to_string(blocks_) + " of " + std::to_string(n) +
                           " bytes out of place (header: " + std::to_string(header_.count) + " blocks of " +
                           std::to_string(header_.block_bytes) + ")");
  write(data, n);
  const Hash sum = section_sum(header_, blocks_, data, n);
  write(sum.data(), sum.size());
  ++blocks_;
}

void KeyWriter::commit() {
  if (!global_done_ || blocks_ != header_.count)
    throw std::logic_error("KeyWriter: commit after " + std::to_string(blocks_) + " of " +
                           std::to_string(header_.count) + " blocks");
  if (pipe_) {
    pipe_->close();
    committed_ = true;
    return;
  }
  if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
    fd_ = -1;
    throw std::runtime_error("cannot write key file '" + tmp_ + "': " + std::strerror(errno));
  }
  fd_ = -1;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw std::runtime_error("cannot rename '" + tmp_ + "' to '" + path_ + "': " + std::strerror(errno));
  committed_ = true;
}

// --- reader ------------------------------------------------------------------

void KeyFile::fail(const std::string& what) const {
  throw std::runtime_error("key file '" + path_ + "': " + what);
}

void KeyFile::fetch(uint8_t* out, size_t n, uint64_t offset) const {
  if (!pipe_) return pread_all(fd_, out, n, offset, path_);
  if (offset < pipe_->position())
    fail("a key stream is read once and in order: byte " + std::to_string(offset) + " has passed (at byte " +
         std::to_string(pipe_->position()) + ")");
  pipe_->skip(offset - pipe_->position());
  pipe_->read(out, n);
}

double KeyFile::stream_wait_s() const { return pipe_ ? pipe_->wait_s() : 0.0; }

KeyFile::KeyFile(const std::string& path, double stream_timeout_s) : path_(path) {
  if (is_named_pipe(path)) {
    pipe_ = std::make_unique<PipeReader>(path, stream_timeout_s, "key stream '" + path + "'");
    file_bytes_ = ~uint64_t(0);  // what the header promises, once read
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(std::string("cannot stat: ") + std::strerror(errno));
    file_bytes_ = static_cast<uint64_t>(st.st_size);
  }
  if (file_bytes_ < kPrefix) fail("too short to be a key file (" + std::to_string(file_bytes_) + " bytes)");
  uint8_t prefix[kPrefix];
  fetch(prefix, kPrefix, 0);
  if (std::memcmp(prefix, kMagic, sizeof kMagic) != 0) fail("not a deepreduce key file (bad magic)");
  Cursor pc{prefix, kPrefix, sizeof kMagic};
  const auto version = static_cast<uint32_t>(pc.le(4));
  const auto body_len = static_cast<uint32_t>(pc.le(4));
  if (version < kOldestKeyFormatVersion || version > kKeyFormatVersion)
    fail("format version " + std::to_string(version) + "; this build reads versions " +
         std::to_string(kOldestKeyFormatVersion) + " to " + std::to_string(kKeyFormatVersion) +
         " (deal the keys again)");
  header_.version = version;
  if (body_len > kMaxHeader || kPrefix + body_len + kSum > file_bytes_)
    fail("truncated or corrupted header (header length " + std::to_string(body_len) + ", file " +
         std::to_string(file_bytes_) + " bytes)");
  std::vector<uint8_t> head(kPrefix + body_len + kSum);
  std::memcpy(head.data(), prefix, kPrefix);
  fetch(head.data() + kPrefix, head.size() - kPrefix, kPrefix);
  const Hash head_sum = sha256(head.data(), kPrefix + body_len);
  if (std::memcmp(head_sum.data(), head.data() + kPrefix + body_len, kSum) != 0)
    fail("header checksum fails: the file is corrupted");
  try {
    Cursor c{head.data() + kPrefix, body_len};
    const uint64_t party = c.le(1), l = c.le(1), f = c.le(1);
    c.take(1);
    if (party > 1) throw std::runtime_error("party " + std::to_string(party) + " is neither 0 (server) nor 1 (client)");
    if (l != kRingBits) throw std::runtime_error("ring of 2^" + std::to_string(l) + "; this build uses 2^64");
    header_.party = static_cast<Party>(party);
    header_.frac_bits = static_cast<int>(f);
    check_frac_bits(header_.frac_bits);
    std::memcpy(header_.nonce.data(), c.take(16), 16);
    header_.count = c.le(8);
    header_.global_bytes = c.le(8);
    header_.block_bytes = c.le(8);
    std::memcpy(header_.model_hash.data(), c.take(32), 32);
    const uint64_t arch_len = c.le(4);
    header_.architecture.assign(reinterpret_cast<const char*>(c.take(arch_len)), arch_len);
  } catch (const std::exception& e) {
    fail(std::string("bad header: ") + e.what());
  }
  Architecture a;
  Program program;
  try {
    a = parse_architecture(header_.architecture);
    program = compile_program(a);
  } catch (const std::exception& e) {
    fail(std::string("its architecture cannot be used: ") + e.what());
  }
  if (model_hash(a, header_.frac_bits) != header_.model_hash)
    fail("the model hash does not match the architecture in the header");
  if (header_.version != key_format_version(program))
    fail("format version " + std::to_string(header_.version) + ", but the keys of its architecture are version " +
         std::to_string(key_format_version(program)) + " (dealt by another build? deal the keys again)");
  const uint64_t want_block = block_layout(program, header_.party).bytes, want_global = global_bytes(program, header_.party);
  if (header_.block_bytes != want_block || header_.global_bytes != want_global)
    fail("blocks of " + std::to_string(header_.block_bytes) + " bytes and a global section of " +
         std::to_string(header_.global_bytes) + ", this build's layout needs " + std::to_string(want_block) + " and " +
         std::to_string(want_global) + " (dealt by another version of the runtime? deal again)");
  global_offset_ = head.size();
  blocks_offset_ = global_offset_ + header_.global_bytes + kSum;
  const uint64_t expect = key_file_bytes(header_);  // UINT64_MAX (never a file's size) on overflow
  if (pipe_ && expect != ~uint64_t(0)) file_bytes_ = expect;
  if (file_bytes_ != expect)
    fail((file_bytes_ < expect ? "truncated: " : "has trailing bytes: ") + std::to_string(file_bytes_) +
         " bytes, its header promises " + std::to_string(expect) + " (" + std::to_string(header_.count) +
         " inferences)");
}

KeyFile::~KeyFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> KeyFile::read_global() const {
  std::vector<uint8_t> data(header_.global_bytes + kSum);
  fetch(data.data(), data.size(), global_offset_);
  const Hash sum = section_sum(header_, kGlobalIndex, data.data(), header_.global_bytes);
  if (std::memcmp(sum.data(), data.data() + header_.global_bytes, kSum) != 0)
    fail("checksum of the global section (weight masks) fails: the file is corrupted");
  data.resize(header_.global_bytes);
  return data;
}

std::vector<uint8_t> KeyFile::read_block(uint64_t index) const {
  if (index >= header_.count)
    fail("has " + std::to_string(header_.count) + " inferences; inference " + std::to_string(index) +
         " does not exist");
  std::vector<uint8_t> data(header_.block_bytes + kSum);
  fetch(data.data(), data.size(), blocks_offset_ + index * (header_.block_bytes + kSum));
  const Hash sum = section_sum(header_, index, data.data(), header_.block_bytes);
  if (std::memcmp(sum.data(), data.data() + header_.block_bytes, kSum) != 0)
    fail("checksum of inference block " + std::to_string(index) + " fails: the file is corrupted");
  data.resize(header_.block_bytes);
  return data;
}

}  // namespace dr::mpc
