// The classes of bad input and lost state an outside campaign found, one test
// each: numeric options checked before any work, run directories that never
// trust a corrupt or mismatched file, the final-epoch kill window, a user's
// own directory never overwritten, stale temporaries, no LibTorch stack
// traces, IDX files whose size does not match their header.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "test_paths.h"
#include "test_util.h"
#include "util/fs.h"

using namespace dr;
namespace fs = std::filesystem;

namespace {

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

const std::string kRun = "--model resnet6:alpha=0.125 --data synthetic:1x8x8:4:64 --threads 1 --workers 0 --batch 16";

int lines_of(const std::string& file) {
  std::ifstream in(file);
  int n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}

std::string flip_middle_byte(const std::string& content) {
  std::string c = content;
  c[c.size() / 2] = static_cast<char>(c[c.size() / 2] ^ 0x5a);
  return c;
}

}  // namespace

TEST(Hardening, EveryNumericOptionIsCheckedBeforeAnyWork) {
  const test::ScratchDir d("opts");
  const std::pair<std::string, std::string> cases[] = {
      {"--warmup nan", "--warmup"},         {"--kd-lambda nan", "--kd-lambda"}, {"--momentum nan", "--momentum"},
      {"--wd nan", "--wd"},                 {"--lr inf", "--lr"},               {"--lr 1e39", "--lr"},
      {"--wd inf", "--wd"},                 {"--kd-T inf", "--kd-T"},           {"--kd-T 1e-300", "--kd-T"},
      {"--kd-lambda 1e300", "--kd-lambda"}, {"--epochs 9223372036854775808", "--epochs"},
      {"--seed -1", "--seed"},              {"--threads 1000", "--threads"},    {"--batch 0", "--batch"},
      {"--momentum 1", "--momentum"},       {"--warmup 1 --epochs 1", "--warmup"}};
  for (const auto& [option, name] : cases) {
    const std::string out = d / "run";
    // Data that does not exist: an option error must come before any read.
    const auto r = cli("train --model resnet6:alpha=0.125 --data cifar10:" + (d / "none") + " --out " + out + " " + option);
    EXPECT_EQ(r.rc, 2) << option << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, name)) << option << "\n" << r.out;
    EXPECT_FALSE(fs::exists(out)) << option;
  }
  // reduce refuses its own options before training anything.
  for (const std::string option : {"--protocol foo", "--plot-format gif", "--measure-pi -1"}) {
    const auto r = cli("reduce --model resnet6:alpha=0.125 --data synthetic:1x8x8:4:64 --budget 1K --out " +
                       (d / "reduce") + " " + option);
    EXPECT_EQ(r.rc, 2) << option << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d / "reduce/teacher")) << option;
  }
}

TEST(Hardening, FinalEpochMetricsAreRepairedOnResume) {
  // A kill between the last checkpoint and the metrics file: the checkpoint
  // says 2 epochs, metrics.jsonl has 1 line, the run is not finished.
  const test::ScratchDir d("final");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 2 --out " + run).rc, 0);
  const std::string full = util::read_file(run + "/metrics.jsonl");
  fs::remove(run + "/result.json");
  fs::remove(run + "/weights.pt");
  util::write_file_atomic(run + "/metrics.jsonl", full.substr(0, full.find('\n') + 1));
  ASSERT_EQ(lines_of(run + "/metrics.jsonl"), 1);
  const auto r = cli("resume " + run);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(util::read_file(run + "/metrics.jsonl"), full);
  EXPECT_TRUE(fs::exists(run + "/result.json"));
}

// The same window hit by a real SIGKILL: the process dies right after the
// final checkpoint's rename, before metrics.jsonl is written.
TEST(Hardening, KillAfterTheFinalCheckpointLosesNoMetricsLine) {
  const test::ScratchDir d("final-kill");
  const std::string run = d / "run";
  {
    test::EnvGuard kill("DEEPREDUCE_KILL_AFTER_CHECKPOINT", "2");
    const auto r = cli("train " + kRun + " --epochs 2 --out " + run);
    ASSERT_NE(r.rc, 0) << r.out;  // killed
  }
  ASSERT_EQ(lines_of(run + "/metrics.jsonl"), 1);
  ASSERT_FALSE(fs::exists(run + "/result.json"));
  const auto r = cli("resume " + run);
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_EQ(lines_of(run + "/metrics.jsonl"), 2);
  std::ifstream in(run + "/metrics.jsonl");
  int64_t epoch = 0;
  for (std::string l; std::getline(in, l);) EXPECT_EQ(nlohmann::json::parse(l)["epoch"], ++epoch);
  EXPECT_TRUE(fs::exists(run + "/result.json"));
  EXPECT_TRUE(test::contains(r.out, "2 epochs")) << r.out;
}

TEST(Hardening, CorruptOrMismatchedRunFilesAreRefusedNamingTheFile) {
  const test::ScratchDir d("integrity");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 2 --out " + run).rc, 0);
  const std::string ckpt = util::read_file(run + "/checkpoint.pt"), config = util::read_file(run + "/config.json");
  fs::remove(run + "/result.json");
  // A corrupted middle: refused, never resumed from.
  util::write_file_atomic(run + "/checkpoint.pt", flip_middle_byte(ckpt));
  auto r = cli("resume " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "checkpoint.pt' is corrupt")) << r.out;
  EXPECT_FALSE(test::contains(r.out, "Exception raised from")) << r.out;  // no LibTorch stack trace
  // A hand-edited config.json that no longer matches the checkpoint.
  util::write_file_atomic(run + "/checkpoint.pt", ckpt);
  auto edited = nlohmann::json::parse(config);
  edited["model"] = "resnet6:alpha=0.25";
  util::write_file_atomic(run + "/config.json", edited.dump(2));
  r = cli("resume " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "model: \"resnet6:alpha=0.25\" in config.json")) << r.out;
  EXPECT_FALSE(test::contains(r.out, "Exception raised from")) << r.out;
  // Restored, the run finishes; then a corrupted weights.pt is named by eval.
  util::write_file_atomic(run + "/config.json", config);
  ASSERT_EQ(cli("resume " + run).rc, 0);
  util::write_file_atomic(run + "/weights.pt", flip_middle_byte(util::read_file(run + "/weights.pt")));
  r = cli("eval " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "weights.pt' does not match the checksum")) << r.out;
}

TEST(Hardening, IntegerOptionsReportTheTextTyped) {
  // Was "got 9223372036854775807" (saturated) and "got 18446744073709551615: a negative number?" (wrapped).
  const test::ScratchDir d("ints");
  const std::pair<std::string, std::string> cases[] = {
      {"--epochs 9223372036854775808", "--epochs: must be in 1..100000 (got '9223372036854775808')"},
      {"--seed 99999999999999999999", "(got '99999999999999999999')"},
      {"--seed -1", "(got '-1')"},
      {"--limit 0x10", "'0x10' is not a whole number"},
      {"--batch 1e3", "'1e3' is not a whole number"}};
  for (const auto& [option, needle] : cases) {
    const auto r = cli("train " + kRun + " --out " + (d / "run") + " " + option);
    EXPECT_EQ(r.rc, 2) << option << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, needle)) << option << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d / "run")) << option;
  }
}

TEST(Hardening, FinishedRunFilesMustAgree) {
  const test::ScratchDir d("agree");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 1 --out " + run).rc, 0);
  const std::string config = util::read_file(run + "/config.json"), result = util::read_file(run + "/result.json"),
                    weights = util::read_file(run + "/weights.pt");
  auto restore = [&] {
    util::write_file_atomic(run + "/config.json", config);
    util::write_file_atomic(run + "/result.json", result);
    util::write_file_atomic(run + "/weights.pt", weights);
  };
  auto edit = [&](const std::string& file, const std::function<void(nlohmann::json&)>& change) {
    auto j = nlohmann::json::parse(util::read_file(run + "/" + file));
    change(j);
    util::write_file_atomic(run + "/" + file, j.dump(2));
  };
  // config.json edited to another alpha: was the wrong architecture, exit 0.
  edit("config.json", [](nlohmann::json& j) { j["model"] = "resnet6:alpha=0.25"; });
  for (const std::string& cmd : {"cost " + run, "count " + run, "eval " + run, "resume " + run,
                                "pi deal " + run + " --out " + (d / "keys")}) {
    const auto r = cli(cmd);
    EXPECT_EQ(r.rc, 1) << cmd << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, run + "/config.json' was changed after the run finished")) << cmd << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(d / "keys"));
  // A run older than the settings digest (and result.json's own): the spec and the ReLU count are still compared.
  restore();
  edit("result.json", [](nlohmann::json& j) { j.erase("settings_sha256"), j.erase("result_sha256"); });
  const std::string old_result = util::read_file(run + "/result.json");
  edit("config.json", [](nlohmann::json& j) { j["model"] = "resnet6:alpha=0.25"; });
  auto r = cli("count " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "records spec resnet6:alpha=0.125, '" + run + "/config.json' trains resnet6:alpha=0.25"))
      << r.out;
  util::write_file_atomic(run + "/config.json", config);
  ASSERT_EQ(cli("eval " + run).rc, 0);  // older result.json files stay readable
  // result.json's spec or ReLU count edited: eval printed the edited spec.
  edit("result.json", [](nlohmann::json& j) { j["spec"] = "resnet6:alpha=0.25"; });
  r = cli("eval " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, run + "/result.json' records spec resnet6:alpha=0.25")) << r.out;
  util::write_file_atomic(run + "/result.json", old_result);
  edit("result.json", [](nlohmann::json& j) { j["relus"] = 5; });
  r = cli("cost " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, "records 5 ReLUs")) << r.out;
  // A wrong type in config.json names the file and the field.
  util::write_file_atomic(run + "/result.json", old_result);
  edit("config.json", [](nlohmann::json& j) { j["epochs"] = "two"; });
  r = cli("eval " + run);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_TRUE(test::contains(r.out, run + "/config.json': bad training config: field 'epochs'")) << r.out;
  // Garbage weights of a finished run: resume and eval check them (resume exited 0).
  restore();
  util::write_file_atomic(run + "/weights.pt", "garbage");
  for (const std::string& cmd : {"resume " + run, "eval " + run}) {
    r = cli(cmd);
    EXPECT_EQ(r.rc, 1) << cmd << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, "weights.pt' does not match the checksum")) << cmd << "\n" << r.out;
  }
  restore();
  EXPECT_EQ(cli("resume " + run).rc, 0);
}

TEST(Hardening, ResultRecordsWhereTheRunStartedAndFinished) {
  const test::ScratchDir d("prov");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 2 --out " + run).rc, 0);
  // Resumed later: "started" stays the run's start (config.json's), "finished" is the resume's.
  fs::remove(run + "/result.json");
  auto config = nlohmann::json::parse(util::read_file(run + "/config.json"));
  config["provenance"]["started"] = "2001-01-01T00:00:00Z";  // provenance is not a setting
  util::write_file_atomic(run + "/config.json", config.dump(2));
  ASSERT_EQ(cli("resume " + run).rc, 0);
  const auto result = nlohmann::json::parse(util::read_file(run + "/result.json"));
  EXPECT_EQ(result["provenance"]["started"], "2001-01-01T00:00:00Z");
  ASSERT_TRUE(result["provenance"].contains("finished")) << result.dump(2);
  EXPECT_GT(result["provenance"]["finished"]["time"].get<std::string>(), "2026");
  EXPECT_TRUE(result["provenance"]["finished"].contains("hostname"));
  EXPECT_EQ(cli("eval " + run).rc, 0);
  // What bench/*.sh record: the same provenance, from `deepreduce provenance`.
  auto p = cli("provenance --threads 1 --device cpu");
  EXPECT_EQ(p.rc, 0) << p.out;
  for (const char* s : {"deepreduce ", "LibTorch ", "cpu, 1 threads", " cores", "host ", "started "})
    EXPECT_TRUE(test::contains(p.out, s)) << s << "\n" << p.out;
  p = cli("provenance --threads 1 --format json");
  EXPECT_EQ(p.rc, 0) << p.out;
  const auto j = nlohmann::json::parse(p.out);
  for (const char* k : {"deepreduce", "commit", "libtorch", "device", "threads", "cpu", "cores", "hostname", "started"})
    EXPECT_TRUE(j.contains(k)) << k;
}

TEST(Hardening, UsersOwnDirectoryIsNeverOverwritten) {
  const test::ScratchDir d("own");
  util::write_file_atomic(d / "mine/result.json", "{\"mine\": true}");
  const auto r = cli("train " + kRun + " --epochs 1 --out " + (d / "mine"));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "not empty")) << r.out;
  EXPECT_EQ(util::read_file(d / "mine/result.json"), "{\"mine\": true}");
  EXPECT_FALSE(fs::exists(d / "mine/config.json"));
}

TEST(Hardening, ResumeRemovesStaleTemporaries) {
  const test::ScratchDir d("tmp");
  const std::string run = d / "run";
  ASSERT_EQ(cli("train " + kRun + " --epochs 2 --out " + run).rc, 0);
  fs::remove(run + "/result.json");
  // Left by a killed process (no process has this id) and by a live one (ours).
  util::write_file_atomic(run + "/metrics.jsonl.tmp.999999999", "partial");
  const std::string live = run + "/checkpoint.pt.tmp." + std::to_string(::getpid());
  util::write_file_atomic(live, "in progress");
  ASSERT_EQ(cli("resume " + run).rc, 0);
  EXPECT_FALSE(fs::exists(run + "/metrics.jsonl.tmp.999999999"));
  EXPECT_TRUE(fs::exists(live));
}

namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int shift : {24, 16, 8, 0}) s.push_back(static_cast<char>(v >> shift));
}

std::string idx_images(uint32_t count, uint32_t rows, uint32_t cols, size_t payload) {
  std::string s;
  put_u32(s, 2051);
  put_u32(s, count);
  put_u32(s, rows);
  put_u32(s, cols);
  return s + std::string(payload, '\x40');
}

std::string idx_labels(uint32_t count) {
  std::string s;
  put_u32(s, 2049);
  put_u32(s, count);
  return s + std::string(count, '\x01');
}

std::string gzip(const std::string& raw) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, raw.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A Fashion-MNIST directory whose train images file is `train_images` (raw bytes).
std::string load_error(const std::string& dir, const std::string& train_images, const std::string& name) {
  util::write_file_atomic(dir + "/" + name, train_images);
  util::write_file_atomic(dir + "/train-labels-idx1-ubyte", idx_labels(4));
  util::write_file_atomic(dir + "/t10k-images-idx3-ubyte", idx_images(2, 28, 28, 2 * 784));
  util::write_file_atomic(dir + "/t10k-labels-idx1-ubyte", idx_labels(2));
  try {
    data::load_dataset("fashion-mnist:" + dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<accepted>";
}

}  // namespace

TEST(Hardening, IdxFilesWhoseSizeDoesNotMatchTheHeaderAreRefused) {
  const test::ScratchDir d("idx");
  // 28x27 declared, 28x28 held: the registry's shape, then the size.
  EXPECT_TRUE(test::contains(load_error(d / "a", idx_images(4, 28, 27, 4 * 784), "train-images-idx3-ubyte"),
                             "holds 28x27 images"));
  // Trailing bytes after the declared payload.
  const std::string m = load_error(d / "b", idx_images(4, 28, 28, 4 * 784 + 10), "train-images-idx3-ubyte");
  EXPECT_TRUE(test::contains(m, "train-images-idx3-ubyte")) << m;
  EXPECT_TRUE(test::contains(m, "trailing data")) << m;
  // A gzip stream without its 8-byte trailer (CRC and length).
  const std::string gz = gzip(idx_images(4, 28, 28, 4 * 784));
  const std::string g = load_error(d / "c", gz.substr(0, gz.size() - 8), "train-images-idx3-ubyte.gz");
  EXPECT_TRUE(test::contains(g, "train-images-idx3-ubyte.gz")) << g;
  EXPECT_TRUE(test::contains(g, "gzip")) << g;
  // Junk after a whole gzip member: was ignored (gzread skips it).
  for (const std::string& junk : {std::string("x"), std::string("junk after the stream"), std::string("\x1f"),
                                 std::string(1 << 18, '\0')}) {
    const std::string j = load_error(d / "j", gz + junk, "train-images-idx3-ubyte.gz");
    EXPECT_TRUE(test::contains(j, "train-images-idx3-ubyte.gz")) << j;
    EXPECT_TRUE(test::contains(j, "trailing data")) << j;
  }
  // A second member that is not valid gzip data is corrupt, not ignored.
  const std::string bad = load_error(d / "k", gz + "\x1f\x8b" + "not deflate", "train-images-idx3-ubyte.gz");
  EXPECT_TRUE(test::contains(bad, "corrupt gzip data")) << bad;
  // Concatenated members are one stream (gzip allows them): accepted.
  const std::string raw = idx_images(4, 28, 28, 4 * 784);
  EXPECT_EQ(load_error(d / "m", gzip(raw.substr(0, 1000)) + gzip(raw.substr(1000)), "train-images-idx3-ubyte.gz"),
            "<accepted>");
  EXPECT_EQ(load_error(d / "n", gz + gzip(""), "train-images-idx3-ubyte.gz"), "<accepted>");
  // The well-formed versions load.
  EXPECT_EQ(load_error(d / "e", gz, "train-images-idx3-ubyte.gz"), "<accepted>");
  EXPECT_EQ(load_error(d / "f", idx_images(4, 28, 28, 4 * 784), "train-images-idx3-ubyte"), "<accepted>");
}
