#pragma once
// Key files: the dealer's correlated randomness for one party.
//
// Layout (little endian):
//   "DRMPCKEY"  u32 format version V  u32 header length H
//   header (H bytes): u8 party (0 server, 1 client), u8 l = 64, u8 f, u8 0,
//     16-byte nonce (shared by the pair), u64 inferences, u64 global bytes G,
//     u64 block bytes B, 32-byte model hash, u32 length + the architecture
//     (serialize_architecture)
//   32-byte SHA-256 of everything before it (the header checksum)
//   global section: G bytes + 32-byte SHA-256 (server: the weight masks A of
//     every linear layer, then each gate step's session words, Gate::session_words,
//     in gate order: the polynomial gate's alpha[C], beta[C]; client: G = 0)
//   one block per inference: B bytes + 32-byte SHA-256 (over the nonce, the
//     party, the block's index and its bytes, so a block moved to another
//     position or another file fails too)
// V is the oldest version that holds the key set (key_format_version): 1
// without polynomial gates (the layout of every earlier build, byte for
// byte), 2 with them (session words, the polynomial gate's keys), 3 with the
// two-round ReLU gate (`--relu-gate dpf:N`, gates/relu_dpf.h; the header's
// architecture names it). A file whose V is not what its architecture needs
// is refused.
//
// Blocks have a fixed size, so a party seeks to the one it needs and never
// reads more than one block at a time (a key set for many inferences can be
// gigabytes). A key file may also be a named pipe (key_stream.h) that the
// dealer writes as the party reads: the same bytes, read once and in order.
//
// Block contents (u64 arrays, wire by wire in program order, see BlockLayout):
//   server: per linear layer u_s [in], k_s [out], m_s [out]; per gate step
//           its keys (live elements x the gate's key_bytes(), gate.h)
//   client: input mask r0 [I], a 16-byte seed (its u_c, k_c, m_c of every
//           linear layer, derived by derive_client_shares), per gate step
//           its keys, the output mask [classes]
//
// Reuse: a block is taken through the party's KeyLedger (ledger.h), which
// records it as used on this machine before the block is read.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mpc/architecture.h"
#include "mpc/program.h"

namespace dr::mpc {

class PipeReader;
class PipeWriter;

constexpr uint32_t kOldestKeyFormatVersion = 1, kKeyFormatVersion = 3;  // what this build reads

enum class Party : uint8_t { Server = 0, Client = 1 };
const char* party_name(Party p);  // "server", "client"

using Nonce = std::array<uint8_t, 16>;
using Seed = std::array<uint8_t, 16>;

struct KeyHeader {
  uint32_t version = kOldestKeyFormatVersion;  // key_format_version of its program
  Party party = Party::Server;
  int frac_bits = kDefaultFracBits;
  Nonce nonce{};
  uint64_t count = 0;         // inferences
  std::string architecture;   // serialize_architecture
  Hash model_hash{};
  uint64_t global_bytes = 0;
  uint64_t block_bytes = 0;
};

// Where each piece of a block lies (byte offsets into the block).
struct BlockLayout {
  struct LinearPart { size_t u, k, m; };  // server: u_s, k_s, m_s
  std::vector<LinearPart> linear;         // by linear_index (server)
  std::vector<size_t> gates;              // by gate_index: start of that step's keys
  size_t input_mask = 0, seed = 0, output_mask = 0;  // client
  size_t bytes = 0;
};
BlockLayout block_layout(const Program& program, Party party);
// The key format version a key set of this program is written in: the
// newest any of its gates needs (Gate::key_format_version), at least 1.
uint32_t key_format_version(const Program& program);
// The bytes of one inference's block that each program step takes (input mask
// and seed on the input step, output mask on the output step); they add up to
// block_layout(program, party).bytes.
std::vector<uint64_t> step_key_bytes(const Program& program, Party party);
// Server: the weight masks A, one per linear layer, in order, then the gate
// steps' session words.
size_t global_bytes(const Program& program, Party party);
// The exact size of the key file with this header (its global_bytes,
// block_bytes and count filled in); UINT64_MAX when that overflows.
uint64_t key_file_bytes(const KeyHeader& header);

// The client's linear-layer shares of one inference, derived from its seed
// with a seeded Prg in a fixed order (per linear layer: u_c, k_c, m_c). The
// dealer and the client both call this.
struct ClientLinearShares {
  std::vector<u64> u, k, m;
};
std::vector<ClientLinearShares> derive_client_shares(const Program& program, const Seed& seed);

// Writes one key file through "<path>.tmp.<pid>" and rename(2) in commit(),
// or, when `path` is a named pipe, straight into it as its reader takes the
// bytes (waiting at most `stream_timeout_s` at a time for the reader).
class KeyWriter {
 public:
  KeyWriter(const std::string& path, const KeyHeader& header, double stream_timeout_s = 60);
  ~KeyWriter();  // removes the temporary file unless committed
  KeyWriter(const KeyWriter&) = delete;
  KeyWriter& operator=(const KeyWriter&) = delete;
  void write_global(const uint8_t* data, size_t n);
  void write_block(const uint8_t* data, size_t n);
  void commit();  // checks that every block was written, fsyncs, renames (a pipe: closes it)
  uint64_t bytes() const { return written_; }
  // A pipe: the seconds spent waiting for its reader (0 for a file).
  double stream_wait_s() const;

 private:
  void write(const uint8_t* data, size_t n);
  std::string path_, tmp_;
  std::unique_ptr<PipeWriter> pipe_;
  KeyHeader header_;
  int fd_ = -1;
  uint64_t blocks_ = 0, written_ = 0;
  bool global_done_ = false, committed_ = false;
};

// Reads a key file. The constructor checks magic, version, header checksum,
// the model hash against the architecture, and the file size; any failure is
// a std::runtime_error naming the file and what is wrong. A named pipe is
// read once, in order (a block before the last one read is refused; a later
// one skips those between), waiting at most `stream_timeout_s` at a time for
// the dealer, and its size is what its header promises.
class KeyFile {
 public:
  explicit KeyFile(const std::string& path, double stream_timeout_s = 60);
  ~KeyFile();
  KeyFile(const KeyFile&) = delete;
  KeyFile& operator=(const KeyFile&) = delete;

  const KeyHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  uint64_t file_bytes() const { return file_bytes_; }
  bool streamed() const { return pipe_ != nullptr; }
  // A pipe: the seconds spent waiting for the dealer's bytes (0 for a file).
  double stream_wait_s() const;

  std::vector<uint8_t> read_global() const;  // checksum verified
  // Checksum verified; no bookkeeping: a party takes its blocks through KeyLedger::take.
  std::vector<uint8_t> read_block(uint64_t index) const;

 private:
  void fail(const std::string& what) const;
  void fetch(uint8_t* out, size_t n, uint64_t offset) const;  // pread, or the pipe's next bytes
  std::string path_;
  KeyHeader header_;
  int fd_ = -1;
  std::unique_ptr<PipeReader> pipe_;
  uint64_t file_bytes_ = 0, global_offset_ = 0, blocks_offset_ = 0;
};

}  // namespace dr::mpc
