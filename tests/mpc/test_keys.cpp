// Key files: what the dealer writes, and every way a key file is refused
// (corrupted, truncated, foreign, the wrong party, a block used before).
#include <filesystem>
#include <fstream>

#include "mpc/fss.h"
#include "mpc/keys.h"
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
  const Plan plan = compile_plan(net);
  KeyFile s(dir / "keys/server.key"), c(dir / "keys/client.key");
  EXPECT_EQ(s.header().party, Party::Server);
  EXPECT_EQ(c.header().party, Party::Client);
  EXPECT_EQ(s.header().nonce, c.header().nonce);
  EXPECT_EQ(s.header().model_hash, model_hash(architecture_of(net), 12));
  EXPECT_EQ(s.header().block_bytes, block_layout(plan, Party::Server).bytes);
  EXPECT_EQ(rep.server_file_bytes, s.file_bytes());
  EXPECT_EQ(rep.client_file_bytes, c.file_bytes());
  EXPECT_EQ(rep.client_block_bytes, c.header().block_bytes + 32);
  // every live ReLU has one key per party; the masked-out half of stem.relu none
  EXPECT_EQ(rep.live_relus, net.totals().relus);
  const size_t relu_bytes = size_t(net.totals().relus) * relu_key_bytes();
  EXPECT_EQ(c.header().block_bytes, 8 * 64 + 16 + relu_bytes + 8 * 4);
  EXPECT_EQ(s.read_global().size(), global_bytes(plan, Party::Server));
  // the per-step key bytes (the per-layer table's) add up to each party's block
  for (Party p : {Party::Server, Party::Client}) {
    const std::vector<uint64_t> per_step = step_key_bytes(plan, p);
    ASSERT_EQ(per_step.size(), plan.steps.size());
    uint64_t sum = 0;
    for (uint64_t b : per_step) sum += b;
    EXPECT_EQ(sum, block_layout(plan, p).bytes) << party_name(p);
  }
  const int stem_relu = plan.relu_steps.front();
  EXPECT_EQ(step_key_bytes(plan, Party::Client)[size_t(stem_relu)],
            plan.steps[size_t(stem_relu)].live.size() * relu_key_bytes());
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(c.read_block(i).size(), c.header().block_bytes);
  // atomic writes leave no temporary files behind
  for (const auto& e : std::filesystem::directory_iterator(dir / "keys"))
    EXPECT_TRUE(e.path().filename() == "server.key" || e.path().filename() == "client.key") << e.path();
}

TEST(Keys, ClientSharesComeFromTheSeed) {
  const Plan plan = compile_plan(tiny_net());
  Seed a{}, b{};
  b[0] = 1;
  const auto x = derive_client_shares(plan, a), y = derive_client_shares(plan, a), z = derive_client_shares(plan, b);
  ASSERT_EQ(x.size(), plan.linear_steps.size());
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

TEST(Keys, UsedBlocksAreNeverHandedOutTwice) {
  ScratchDir dir("mpc-keys");
  deal_keys(tiny_net(), dir.path, 3);
  const std::string ck = dir / "client.key";
  {
    KeyFile c(ck);
    EXPECT_EQ(c.next_unused(), 0u);
    c.take(0);
    expect_error([&] { c.take(0); }, "inference 0 was already used");
  }
  KeyFile c(ck);  // the bookkeeping survives the process
  EXPECT_EQ(c.next_unused(), 1u);
  expect_error([&] { c.take(0); }, "already used");
  c.take(2);  // skipping is allowed (block 1 is lost), going back is not
  expect_error([&] { c.take(1); }, "already used");
  expect_error([&] { c.take(3); }, "used up");
  // a new deal starts a new key set: its bookkeeping starts at 0
  deal_keys(tiny_net(), dir.path, 1);
  EXPECT_EQ(KeyFile(ck).next_unused(), 0u);
}
