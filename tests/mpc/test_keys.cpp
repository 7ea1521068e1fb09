// Key files: what the dealer writes (into files or, streamed, into named
// pipes), and every way a key file is refused
// (corrupted, truncated, foreign, the wrong party); the ledger of used blocks
// (a block used before, under any name or path); the dealer's checks (space,
// interruption, stale temporaries).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mpc/gates/poly.h"
#include "mpc/gates/relu.h"
#include "mpc/key_stream.h"
#include "mpc/keys.h"
#include "mpc/ledger.h"
#include "mpc_test_util.h"
#include "util/fs.h"

using namespace dr;
using namespace dr::mpc;
using namespace dr::mpc::test;

namespace {

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.get(c);
  f.seekp(std::streamoff(offset));
  f.put(char(c ^ 0x10));
}

// Offset of the first byte of block `i` of a key file.
uint64_t block_offset(const KeyFile& k, uint64_t i) {
  return k.file_bytes() - (k.header().count - i) * (k.header().block_bytes + 32);
}

}  // namespace

TEST(Keys, DealWritesBothFilesWithTheLayoutSizes) {
  ScratchDir dir("mpc-keys");
  arch::Network net = tiny_net();
  mask_half(net, "stem.relu");
  const DealReport rep = deal_keys(net, dir / "keys", 3);
  const Program program = compile_program(net);
  KeyFile s(dir / "keys/server.key"), c(dir / "keys/client.key");
  EXPECT_EQ(s.header().party, Party::Server);
  EXPECT_EQ(c.header().party, Party::Client);
  EXPECT_EQ(s.header().nonce, c.header().nonce);
  EXPECT_EQ(s.header().model_hash, model_hash(architecture_of(net), 12));
  EXPECT_EQ(s.header().block_bytes, block_layout(program, Party::Server).bytes);
  EXPECT_EQ(rep.server_file_bytes, s.file_bytes());
  EXPECT_EQ(rep.client_file_bytes, c.file_bytes());
  EXPECT_EQ(rep.client_block_bytes, c.header().block_bytes + 32);
  // every live ReLU has one key per party; the masked-out half of stem.relu none
  EXPECT_EQ(rep.live_relus, net.totals().relus);
  const size_t relu_bytes = size_t(net.totals().relus) * relu_key_bytes();
  EXPECT_EQ(c.header().block_bytes, 8 * 64 + 16 + relu_bytes + 8 * 4);
  EXPECT_EQ(s.read_global().size(), global_bytes(program, Party::Server));
  // the per-step key bytes (the per-layer table's) add up to each party's block
  for (Party p : {Party::Server, Party::Client}) {
    const std::vector<uint64_t> per_step = step_key_bytes(program, p);
    ASSERT_EQ(per_step.size(), program.steps.size());
    uint64_t sum = 0;
    for (uint64_t b : per_step) sum += b;
    EXPECT_EQ(sum, block_layout(program, p).bytes) << party_name(p);
  }
  const int stem_relu = program.gate_steps.front();
  EXPECT_EQ(step_key_bytes(program, Party::Client)[size_t(stem_relu)],
            program.steps[size_t(stem_relu)].live.size() * relu_key_bytes());
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(c.read_block(i).size(), c.header().block_bytes);
  // atomic writes leave no temporary files behind
  for (const auto& e : std::filesystem::directory_iterator(dir / "keys"))
    EXPECT_TRUE(e.path().filename() == "server.key" || e.path().filename() == "client.key") << e.path();
}

// A key set with polynomial elements: format version 2, 40 key bytes per
// polynomial element and party, the server's session words (alpha, beta per
// channel of each polynomial step) after its weight masks.
TEST(Keys, PolynomialKeySetHasItsLayout) {
  ScratchDir dir("mpc-keys");
  const arch::Network net = poly_net();
  const Program program = compile_program(net);
  const DealReport rep = deal_keys(net, dir.path, 2);
  EXPECT_EQ(rep.poly_elements, net.totals().polys);
  KeyFile s(dir / "server.key"), c(dir / "client.key");
  EXPECT_EQ(key_format_version(program), 2u);
  EXPECT_EQ(s.header().version, 2u);
  EXPECT_EQ(c.header().version, 2u);
  size_t weights = 0;
  for (int i : program.linear_steps) weights += 8 * size_t(program.steps[size_t(i)].geom.weight_numel());
  EXPECT_EQ(s.header().global_bytes, weights + 16 * (8 + 16 + 32));
  EXPECT_EQ(s.read_global().size(), s.header().global_bytes);
  const size_t relus = size_t(net.totals().relus) * relu_key_bytes(), polys = size_t(net.totals().polys) * 40;
  EXPECT_EQ(c.header().block_bytes, 8 * 64 + 16 + relus + polys + 8 * 4);
  for (Party p : {Party::Server, Party::Client}) {
    const std::vector<uint64_t> per_step = step_key_bytes(program, p);
    uint64_t sum = 0;
    for (size_t i = 0; i < per_step.size(); ++i) {
      sum += per_step[i];
      const Step& st = program.steps[i];
      if (st.kind == StepKind::Gate && st.gate == GateKind::Poly) {
        EXPECT_EQ(per_step[i], uint64_t(st.live_count) * poly_key_bytes()) << st.name;
      }
    }
    EXPECT_EQ(sum, block_layout(program, p).bytes) << party_name(p);
  }
  for (uint64_t i = 0; i < 2; ++i) EXPECT_EQ(s.read_block(i).size(), s.header().block_bytes);
  EXPECT_EQ(parse_architecture(s.header().architecture).masks.at("layer2.0.relu").polys, 128);
}

// Without polynomials a key set is written in version 1, the layout of every
// earlier build byte for byte; a file whose version is not what its
// architecture needs, or one this build does not know, is refused.
TEST(Keys, FormatVersionIsWhatTheArchitectureNeeds) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir / "plain", 1);
  EXPECT_EQ(KeyFile(dir / "plain/server.key").header().version, 1u);
  EXPECT_EQ(util::read_file(dir / "plain/client.key").substr(8, 4), std::string("\x01\0\0\0", 4));
  const arch::Network net = poly_net();
  const Program program = compile_program(net);
  for (uint32_t version : {1u, 3u, 4u}) {
    KeyHeader h;
    h.version = version;
    h.party = Party::Client;
    h.count = 1;
    h.architecture = serialize_architecture(architecture_of(net));
    h.model_hash = model_hash(architecture_of(net), h.frac_bits);
    h.block_bytes = block_layout(program, Party::Client).bytes;
    const std::string path = dir / ("v" + std::to_string(version) + ".key");
    KeyWriter w(path, h);
    w.write_global(nullptr, 0);
    w.write_block(std::vector<uint8_t>(h.block_bytes).data(), h.block_bytes);
    w.commit();
    if (version < 4) {
      expect_error([&] { KeyFile k(path); }, "key file '" + path + "': format version " + std::to_string(version) +
                                                 ", but the keys of its architecture are version 2");
    } else {
      expect_error([&] { KeyFile k(path); },
                   "key file '" + path + "': format version 4; this build reads versions 1 to 3");
    }
  }
}

// A key file whose architecture record cannot be read names the file and
// what is accepted.
TEST(Keys, MalformedArchitectureNamesTheFile) {
  ScratchDir dir("mpc-keys");
  KeyHeader h;
  h.party = Party::Client;
  h.architecture = R"({"classes":4,"format":"deepreduce-mpc-architecture","input":[1,8,8],"masks":{},)"
                   R"("spec":"resnet6:alpha=0.125","version":7})";
  const std::string path = dir / "odd.key";
  KeyWriter w(path, h);
  w.write_global(nullptr, 0);
  w.commit();
  expect_error([&] { KeyFile k(path); }, "key file '" + path + "': its architecture cannot be used: architecture "
                                         "record of version 7 (accepted: version 1 (masks as 'keep' bits) and 2");
}

TEST(Keys, ClientSharesComeFromTheSeed) {
  const Program program = compile_program(tiny_net());
  Seed a{}, b{};
  b[0] = 1;
  const auto x = derive_client_shares(program, a), y = derive_client_shares(program, a), z = derive_client_shares(program, b);
  ASSERT_EQ(x.size(), program.linear_steps.size());
  EXPECT_EQ(x[3].k, y[3].k);
  EXPECT_NE(x[3].k, z[3].k);
  EXPECT_EQ(x[0].u.size(), 64u);
}

TEST(Keys, CorruptedTruncatedAndForeignFilesAreRefused) {
  ScratchDir dir("mpc-keys");
  const arch::Network net = tiny_net();
  deal_keys(net, dir.path, 2);
  const std::string sk = dir / "server.key", ck = dir / "client.key";
  {
    KeyFile c(ck);
    flip_byte(ck, block_offset(c, 1) + 100);
  }
  KeyFile c(ck);
  EXPECT_NO_THROW(c.read_block(0));
  expect_error([&] { c.read_block(1); }, "checksum of inference block 1 fails");
  expect_error([&] { c.read_block(1); }, ck);

  flip_byte(sk, 40);  // inside the header
  expect_error([&] { KeyFile k(sk); }, "header checksum fails");
  flip_byte(sk, 40);
  {
    KeyFile s(sk);
    flip_byte(sk, block_offset(s, 0) - 40);  // the global section (weight masks)
    expect_error([&] { s.read_global(); }, "global section");
  }

  std::filesystem::resize_file(sk, std::filesystem::file_size(sk) - 10);
  expect_error([&] { KeyFile k(sk); }, "truncated");
  {
    std::ofstream(dir / "foreign.key") << "this is not a key file at all, just some text";
  }
  expect_error([&] { KeyFile k(dir / "foreign.key"); }, "not a deepreduce key file");
  expect_error([&] { KeyFile k(dir / "missing.key"); }, "cannot open");
}

TEST(Keys, BlockMovedToAnotherPlaceIsRefused) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir.path, 2);
  const std::string ck = dir / "client.key";
  KeyFile c(ck);
  const uint64_t n = c.header().block_bytes + 32;
  std::string bytes = util::read_file(ck);
  bytes.replace(size_t(block_offset(c, 0)), size_t(n), bytes.substr(size_t(block_offset(c, 1)), size_t(n)));
  util::write_file_atomic(dir / "swapped.key", bytes);
  KeyFile s(dir / "swapped.key");
  expect_error([&] { s.read_block(0); }, "checksum of inference block 0 fails");
}

TEST(KeyLedger, UsedBlocksAreNeverHandedOutTwice) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir / "keys", 3);
  const std::string ck = dir / "keys/client.key", state = dir / "state";
  {
    KeyFile c(ck);
    KeyLedger l(c, state);
    EXPECT_EQ(l.next_unused(), 0u);
    EXPECT_EQ(l.take(0).size(), c.header().block_bytes);
    expect_error([&] { l.take(0); }, "key file '" + ck + "': inference block 0 was already used on this machine");
  }
  KeyFile c(ck);  // the ledger survives the process
  KeyLedger l(c, state);
  EXPECT_EQ(l.next_unused(), 1u);
  expect_error([&] { l.take(0); }, "deal new keys");
  l.take(2);  // skipping is allowed (block 1 is lost), going back is not
  expect_error([&] { l.take(1); }, "inference block 1 was already used");
  expect_error([&] { l.take(3); }, "all 3 inferences are used up");
  // the server's blocks are its own; a new deal (new nonce) starts over
  KeyFile s(dir / "keys/server.key");
  EXPECT_EQ(KeyLedger(s, state).next_unused(), 0u);
  deal_keys(tiny_net(), dir / "keys", 1);
  KeyFile fresh(ck);
  EXPECT_EQ(KeyLedger(fresh, state).next_unused(), 0u);
  // nothing beside the key files records their use
  for (const auto& e : std::filesystem::directory_iterator(dir / "keys"))
    EXPECT_TRUE(e.path().filename() == "server.key" || e.path().filename() == "client.key") << e.path();
}

// Renaming or copying a used key file, or cleaning its directory, does not
// make a block usable again: the ledger knows the key set by its nonce.
TEST(KeyLedger, CopiedOrRenamedKeyFileIsRefused) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir / "a", 2);
  const std::string state = dir / "state";
  {
    KeyFile c(dir / "a/client.key");
    KeyLedger(c, state).take(0);
  }
  util::make_dirs(dir / "b");
  std::filesystem::copy_file(dir / "a/client.key", dir / "b/renamed.key");
  std::filesystem::rename(dir / "a/client.key", dir / "a/other-name.key");
  for (const std::string& path : {dir / "b/renamed.key", dir / "a/other-name.key"}) {
    KeyFile copy(path);
    KeyLedger l(copy, state);
    EXPECT_EQ(l.next_unused(), 1u) << path;
    expect_error([&] { l.take(0); }, "key file '" + path + "': inference block 0 was already used");
    expect_error([&] { l.take(0); }, "taken from '" + std::filesystem::path(dir / "a/client.key").lexically_normal().string());
  }
  // Another machine (another state directory) has a ledger of its own: the
  // limit the docs state; the handshake still skips what the peer used.
  KeyFile copy(dir / "b/renamed.key");
  EXPECT_EQ(KeyLedger(copy, dir / "elsewhere").next_unused(), 0u);
}

// Processes racing for one block: the flock lets exactly one claim it.
TEST(KeyLedger, TwoProcessesCannotClaimTheSameBlock) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir.path, 2);
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    const std::string copy = dir / ("copy" + std::to_string(k) + ".key");
    std::filesystem::copy_file(dir / "server.key", copy);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int rc = 1;
      try {
        KeyFile f(copy);
        KeyLedger(f, dir / "state").take(0);
        rc = 0;
      } catch (...) {
      }
      ::_exit(rc);
    }
    kids.push_back(pid);
  }
  int claimed = 0;
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    claimed += WEXITSTATUS(status) == 0;
  }
  EXPECT_EQ(claimed, 1);
}

// The block is recorded before it is read: a block that fails its checksum
// (or a crash while it is used) is spent, never handed out again.
TEST(KeyLedger, BlockIsRecordedBeforeItIsRead) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir.path, 2);
  const std::string ck = dir / "client.key";
  {
    KeyFile c(ck);
    flip_byte(ck, block_offset(c, 0) + 5);
  }
  KeyFile c(ck);
  KeyLedger l(c, dir / "state");
  expect_error([&] { l.take(0); }, "checksum of inference block 0 fails");
  EXPECT_EQ(KeyLedger(c, dir / "state").next_unused(), 1u);
  const auto j = nlohmann::json::parse(util::read_file(l.path()));
  EXPECT_EQ(j["next"], 1);
  EXPECT_EQ(j["party"], "client");
  // an entry that cannot be read is refused, never guessed
  util::write_file_atomic(l.path(), "{\"nonce\": 12");
  expect_error([&] { l.take(1); }, "key ledger '" + l.path() + "' is unreadable");
  expect_error([&] { l.next_unused(); }, "refusing to guess which blocks of key file '" + ck + "'");
}

TEST(KeyLedger, StateDirectoryComesFromTheEnvironment) {
  using dr::test::EnvGuard;
  EnvGuard home("HOME", "/home/someone"), xdg("XDG_STATE_HOME", nullptr), own("DEEPREDUCE_STATE_DIR", nullptr);
  EXPECT_EQ(default_state_dir(), "/home/someone/.local/state/deepreduce");
  {
    EnvGuard x("XDG_STATE_HOME", "/var/state");
    EXPECT_EQ(default_state_dir(), "/var/state/deepreduce");
    EnvGuard relative("XDG_STATE_HOME", "state");  // XDG: a relative path is ignored
    EXPECT_EQ(default_state_dir(), "/home/someone/.local/state/deepreduce");
    EnvGuard d("DEEPREDUCE_STATE_DIR", "/tmp/dr-state");
    EXPECT_EQ(default_state_dir(), "/tmp/dr-state");
    EnvGuard empty("DEEPREDUCE_STATE_DIR", "");  // empty = unset
    EXPECT_EQ(default_state_dir(), "/home/someone/.local/state/deepreduce");
  }
}

// --- dealing ---------------------------------------------------------------------

TEST(Deal, WritesExactlyTheBytesItChecksFor) {
  ScratchDir dir("mpc-deal");
  const arch::Network net = tiny_net();
  const DealReport r = deal_keys(net, dir.path, 3, 10);
  EXPECT_EQ(deal_bytes(architecture_of(net), 10, 3), r.server_file_bytes + r.client_file_bytes);
  EXPECT_EQ(deal_bytes(architecture_of(net), 10, 3),
            std::filesystem::file_size(dir / "server.key") + std::filesystem::file_size(dir / "client.key"));
  EXPECT_EQ(deal_bytes(architecture_of(net), 10, ~uint64_t(0) / 2), ~uint64_t(0));  // overflow saturates
}

TEST(Deal, TooLittleSpaceIsRefusedBeforeWriting) {
  ScratchDir dir("mpc-deal");
  try {
    deal_keys(tiny_net(), dir / "keys", 99999999999ull);
    ADD_FAILURE() << "a deal of 99,999,999,999 inferences was not refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "the key files need ")) << e.what();
    EXPECT_TRUE(contains(e.what(), "but the file system of '" + (dir / "keys") + "' has ")) << e.what();
    EXPECT_TRUE(contains(e.what(), " free: deal fewer inferences")) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "keys"));
}

// An interrupted deal (the CLI's SIGINT/SIGTERM) leaves no temporary and
// keeps the key files that were there.
TEST(Deal, InterruptedDealLeavesNoFiles) {
  ScratchDir dir("mpc-deal");
  deal_keys(tiny_net(), dir.path, 1);
  const Nonce before = KeyFile(dir / "client.key").header().nonce;
  DealOptions o;
  o.out_dir = dir.path;
  o.count = 5;
  int asked = 0;
  o.interrupted = [&] { return ++asked > 2; };
  expect_error([&] { deal(architecture_of(tiny_net()), o); }, "deal interrupted after 2 of 5 inferences");
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"client.key", "server.key"}));
  EXPECT_EQ(KeyFile(dir / "client.key").header().nonce, before);
}

// What a kill -9 of an earlier deal left is removed by the next one.
TEST(Deal, StaleTemporariesOfAKilledDealAreRemoved) {
  ScratchDir dir("mpc-deal");
  const pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  const std::string stale = dir / ("server.key.tmp." + std::to_string(gone));
  util::write_file_atomic(stale, "half a key file");
  deal_keys(tiny_net(), dir.path, 1);
  EXPECT_FALSE(std::filesystem::exists(stale));
}

// --- key streams: key files as named pipes (pi deal --stream) ------------------

namespace {

void make_pipes(const std::string& dir) {
  for (const char* name : {"server.key", "client.key"})
    ASSERT_EQ(::mkfifo((dir + "/" + name).c_str(), 0600), 0) << name;
}

DealOptions stream_options(const std::string& dir, uint64_t count, double timeout_s = 10) {
  DealOptions o;
  o.out_dir = dir;
  o.count = count;
  o.stream = true;
  o.stream_timeout_s = timeout_s;
  return o;
}

}  // namespace

// The dealer writes both parties' pipes as they read: every block's checksum
// holds, the sizes are the header's, a block is read once and in order (one
// already passed is refused; a later one skips those between), and nothing
// but the pipes is left in the directory.
TEST(KeyStream, PartiesReadTheDealersKeysBlockByBlock) {
  ScratchDir dir("mpc-stream");
  make_pipes(dir.path);
  const arch::Network net = tiny_net();
  DealReport rep;
  std::string dealer_error, server_error, client_error;
  std::thread dealer([&] {
    try {
      rep = deal(architecture_of(net), stream_options(dir.path, 3));
    } catch (const std::exception& e) {
      dealer_error = e.what();
    }
  });
  uint64_t server_bytes = 0, client_bytes = 0;
  std::thread server([&] {
    try {
      KeyFile k(dir / "server.key", 10);
      EXPECT_TRUE(k.streamed());
      EXPECT_EQ(k.read_global().size(), k.header().global_bytes);
      EXPECT_EQ(k.read_block(0).size(), k.header().block_bytes);
      expect_error([&] { k.read_block(0); }, "a key stream is read once and in order");
      EXPECT_EQ(k.read_block(2).size(), k.header().block_bytes);  // skips block 1
      server_bytes = k.file_bytes();
    } catch (const std::exception& e) {
      server_error = e.what();
    }
  });
  std::thread client([&] {
    try {
      KeyFile k(dir / "client.key", 10);
      for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(k.read_block(i).size(), k.header().block_bytes);
      client_bytes = k.file_bytes();
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });
  dealer.join();
  server.join();
  client.join();
  EXPECT_EQ(dealer_error, "");
  EXPECT_EQ(server_error, "");
  EXPECT_EQ(client_error, "");
  EXPECT_TRUE(rep.streamed);
  EXPECT_EQ(rep.server_file_bytes, server_bytes);
  EXPECT_EQ(rep.client_file_bytes, client_bytes);
  EXPECT_GE(rep.stream_wait_s, 0.0);
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    ++entries;
    EXPECT_TRUE(is_named_pipe(e.path().string())) << e.path();
  }
  EXPECT_EQ(entries, 2);
}

// A dealer that stops midway, a dealer that never comes, a party that never
// comes, and a stream into something that is not a pipe: each a clear error
// within the timeout, naming the pipe.
TEST(KeyStream, AStoppedOrMissingPeerIsANamedErrorWithinTheTimeout) {
  ScratchDir dir("mpc-stream");
  make_pipes(dir.path);
  const arch::Network net = tiny_net();
  std::string dealer_error;
  std::thread dealer([&] {
    DealOptions o = stream_options(dir.path, 5);
    int asked = 0;
    o.interrupted = [&] { return ++asked > 1; };  // stops after block 0
    try {
      deal(architecture_of(net), o);
    } catch (const std::exception& e) {
      dealer_error = e.what();
    }
  });
  std::thread client([&] {
    try {
      KeyFile k(dir / "client.key", 10);
      k.read_block(0);
    } catch (...) {
    }
  });
  {
    KeyFile k(dir / "server.key", 10);
    k.read_global();
    k.read_block(0);
    expect_error([&] { k.read_block(1); }, "the dealer closed its key stream after");
  }
  dealer.join();
  client.join();
  EXPECT_TRUE(contains(dealer_error, "deal interrupted after 1 of 5")) << dealer_error;

  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { KeyFile k(dir / "server.key", 0.2); }, "no key bytes from the dealer for 0.2 s");
  expect_error([&] { deal(architecture_of(net), stream_options(dir.path, 1, 0.2)); },
               "no party opened it to read within 0.2 s");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);

  ScratchDir plain("mpc-stream");
  expect_error([&] { deal(architecture_of(net), stream_options(plain.path, 1)); }, "is not a named pipe");
}
