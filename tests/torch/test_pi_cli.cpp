// Private inference through the CLI: `deepreduce pi run` on a network trained
// on the real Fashion-MNIST data (dealer, server and client as three
// processes), its agreement with the plaintext model and the fixed-point
// reference, the exact cost formula, bad inputs, and reduce --measure-pi.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "arch/spec.h"
#include "pi/private_cost.h"
#include "pipeline/private_inference.h"
#include "test_paths.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
namespace test = dr::test;
using nlohmann::json;

namespace {

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

// The JSON object a command printed on stdout (stderr carries progress).
json json_of(const std::string& args) {
  const auto r = test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args + " 2>/dev/null");
  EXPECT_EQ(r.rc, 0) << args << "\n" << r.out;
  return json::parse(r.out);
}

const char* kFashion = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

}  // namespace

TEST(PiCli, TrainedFashionMnistNetworkRunsPrivately) {
  if (!fs::exists(kFashion)) GTEST_SKIP() << "Fashion-MNIST (dataset-fashion-mnist) is not installed";
  const test::ScratchDir d("pi");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());  // the key ledger, not the user's
  const std::string run = d / "run";
  ASSERT_EQ(cli("train --model resnet6:alpha=0.125:rho=0.5 --data fashion-mnist --limit 3000 --epochs 1 --threads 2 "
                "--out " + run).rc, 0);
  const json s = json_of("pi run " + run + " --data fashion-mnist --count 100 --format json --quiet --keys " +
                         (d / "keys"));
  EXPECT_EQ(s["images"], 100);
  EXPECT_EQ(s["relus"], 4688);
  // Private argmax equals the fixed-point reference on every image, the float model on >= 99%.
  EXPECT_EQ(s["reference"]["argmax_equal"], 100);
  EXPECT_EQ(s["reference"]["failures"], 0);
  EXPECT_GE(s["agreement"].get<double>(), 0.99);
  EXPECT_GT(s["accuracy"].get<double>(), 0.3);
  // Bytes and rounds are the formula's, exactly.
  EXPECT_EQ(s["online_bytes"].get<int64_t>(), 100 * s["expected"]["online_bytes_per_image"].get<int64_t>());
  EXPECT_EQ(s["rounds"], s["expected"]["rounds"]);
  int64_t relu_bytes = 0;
  for (const auto& l : s["layers"])
    if (l["kind"] == "relu") relu_bytes += static_cast<int64_t>(l["bytes"].get<double>());
  EXPECT_EQ(relu_bytes, 16 * 4688);  // 8 bytes per live ReLU and party
  // Per-layer key bytes add up to each party's key block (without its 32-byte checksum).
  for (const char* party : {"server", "client"}) {
    int64_t keys = 0;
    for (const auto& l : s["layers"]) keys += l["key_bytes"][party].get<int64_t>();
    EXPECT_EQ(keys + 32, s["key_bytes_per_image"][party].get<int64_t>()) << party;
  }
  EXPECT_EQ(s["online_bytes_per_image"].get<double>(), s["expected"]["online_bytes_per_image"].get<double>());
  EXPECT_EQ(s["key_bytes"]["server"].get<int64_t>(), 100 * s["key_bytes_per_image"]["server"].get<int64_t>());
  EXPECT_GT(s["seconds_per_image"].get<double>(), 0);
  EXPECT_TRUE(test::contains(s["trust_model"].get<std::string>(), "non-colluding dealer"));
  EXPECT_FALSE(s["bill_per_image"]["keys_streamed"].get<bool>());  // --keys: key files, kept
  EXPECT_TRUE(fs::is_regular_file(d / "keys/server.key"));
  // The keys were used: a second session on the same key directory is refused.
  const auto again = cli("pi serve " + run + " --keys " + (d / "keys/server.key") + " --timeout 3");
  EXPECT_NE(again.rc, 0);
}

TEST(PiCli, BadInputsAreRefusedClearly) {
  const test::ScratchDir d("pi-bad");
  const std::string data = "--data synthetic:1x12x12:4:64 --epochs 1 --batch 16 --threads 1 --workers 0";
  ASSERT_EQ(cli("train --model resnet6:alpha=0.125 " + data + " --out " + (d / "a")).rc, 0);
  ASSERT_EQ(cli("train --model resnet6:alpha=0.125:cull=S1 " + data + " --out " + (d / "b")).rc, 0);
  struct Case {
    std::string args, says;
    int rc;
  };
  const Case cases[] = {
      {"pi run " + (d / "a") + " --data synthetic:1x12x12:4:64 --count 0", "--count", 2},
      {"pi run " + (d / "nope") + " --data synthetic:1x12x12:4:64", "not a finished run", 2},
      {"pi run " + (d / "a") + " --data synthetic:3x12x12:4:64 --count 2", "1x12x12", 2},
      {"pi run " + (d / "a") + " --data synthetic:1x12x12:4:64 --frac-bits 30", "1..16", 2},
      {"pi client --keys " + (d / "k/client.key") + " --connect localhost --data synthetic:1x12x12", "HOST:PORT", 2},
      {"pi client --keys " + (d / "k/client.key") + " --connect 127.0.0.1:80abc --data synthetic:1x12x12", "HOST:PORT", 2},
      {"pi client --keys " + (d / "k/client.key") + " --connect 127.0.0.1:70000 --data synthetic:1x12x12", "HOST:PORT", 2},
      {"pi client --keys " + (d / "k/client.key") + " --connect :5000 --data synthetic:1x12x12", "HOST:PORT", 2},
      {"pi deal " + (d / "a") + " --out " + (d / "k0") + " --format yaml", "--format", 2},
  };
  for (const auto& c : cases) {
    const auto r = cli(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, c.says)) << c.args << "\n" << r.out;
  }
  // Keys dealt for one run are refused by a server holding another.
  ASSERT_EQ(cli("pi deal " + (d / "a") + " --out " + (d / "k")).rc, 0);
  const auto r = cli("pi serve " + (d / "b") + " --keys " + (d / "k/server.key"));
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "were dealt for resnet6:alpha=0.125 ")) << r.out;
}

// VGG16's max pooling runs privately (pairwise comparisons on ReLU gates),
// counted apart from the ReLUs.
TEST(PiCli, MaxPoolingNetworksRunPrivately) {
  const test::ScratchDir d("pi-vgg");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());
  ASSERT_EQ(cli("train --model vgg16:alpha=0.0625:cull=S1 --data synthetic:3x32x32:4:32 --epochs 1 --batch 16 "
                "--threads 1 --workers 0 --out " + (d / "v")).rc, 0);
  const auto v = cli("pi run " + (d / "v") + " --data synthetic:3x32x32:4:32 --count 2 --format json");
  ASSERT_EQ(v.rc, 0) << v.out;
  const auto s = json::parse(v.out.substr(v.out.find('{')));
  const auto count = json::parse(cli("count " + (d / "v") + " --format json").out);
  EXPECT_EQ(s["relus"], count["relus"]);  // the comparisons are not ReLUs
  // 3 comparisons per pooled output: 4x16x16, 8x8x8, 16x4x4, 32x2x2, 32x1x1.
  EXPECT_EQ(s["max_comparisons"].get<int64_t>(), 3 * (1024 + 512 + 256 + 128 + 32));
  EXPECT_EQ(s["agreement"].get<double>(), 1.0);
  EXPECT_EQ(s["rounds"], s["expected"]["rounds"]);
  const auto text = cli("pi run " + (d / "v") + " --data synthetic:3x32x32:4:32 --count 1");
  EXPECT_TRUE(test::contains(text.out, "5,856 max-pooling comparisons")) << text.out;
  // A private argmax that differs from the float model's but equals the
  // fixed-point reference's is named a near-tie, with the float margin.
  EXPECT_EQ(s["float_disagreements"].size(), 0u);
  json tied = s;
  tied["agreement"] = 0.5;
  tied["float_disagreements"] = json::array(
      {{{"index", 1}, {"private", 2}, {"float", 0}, {"fixed_reference", 2}, {"float_margin", 0.0024}}});
  EXPECT_TRUE(test::contains(dr::pipeline::summary_table(tied),
                             "(of 1 disagreement, 1 is a near-tie of the float model that the fixed-point reference "
                             "shares, float margins 0.0024)"))
      << dr::pipeline::summary_table(tied);
  tied["float_disagreements"][0]["fixed_reference"] = 0;
  EXPECT_TRUE(test::contains(dr::pipeline::summary_table(tied), "0 are near-ties of the float model that the "
                             "fixed-point reference shares; 1 not explained by quantisation)"))
      << dr::pipeline::summary_table(tied);
}

// `--relu-gate dpf:N` and `dcf:N`: the reduced-width gates from the command
// line. In range (N = 24) the two-round gate agrees as the one-round 64-bit
// gate does with a quarter of its key and two rounds per ReLU layer, the
// one-round one with under half its key in its rounds; at N = 8 most inputs are outside, which the run
// counts and says (the reference reads their sign as the protocol does, but
// a truncation's one unit now flips signs at every multiple of 2^7, so even
// the fixed-point agreement is no longer exact). cost shows the gate's figures; a
// width out of range is refused naming what is accepted.
TEST(PiCli, ReducedWidthReluGatesFromTheCommandLine) {
  const test::ScratchDir d("pi-dpf");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());
  const std::string data = "synthetic:1x12x12:4:64";
  ASSERT_EQ(cli("train --model resnet6:alpha=0.125 --data " + data + " --epochs 1 --batch 16 --threads 1 "
                "--workers 0 --out " + (d / "a")).rc, 0);
  const std::string run = "pi run " + (d / "a") + " --data " + data + " --count 3 --format json --quiet";
  const json dcf = json_of(run), dpf = json_of(run + " --relu-gate dpf:24"), narrow = json_of(run + " --relu-gate dpf:8"),
             one_round = json_of(run + " --relu-gate dcf:24 --deal-first");
  EXPECT_EQ(one_round["relu_gate"], "dcf:24");
  EXPECT_FALSE(one_round["bill_per_image"]["keys_streamed"].get<bool>());  // --deal-first: files, then removed
  EXPECT_EQ(one_round["rounds"], dcf["rounds"]);
  EXPECT_EQ(one_round["reference"]["argmax_equal"], 3);
  EXPECT_LT(2 * one_round["key_bytes_per_image"]["client"].get<int64_t>(),
            dcf["key_bytes_per_image"]["client"].get<int64_t>());
  EXPECT_EQ(dcf["relu_gate"], "dcf");
  EXPECT_EQ(dpf["relu_gate"], "dpf:24");
  EXPECT_EQ(dpf["reference"]["argmax_equal"], 3);
  EXPECT_EQ(dpf["rounds"], dpf["expected"]["rounds"]);
  const int64_t relu_layers = 5;  // resnet6: the stem's and two per block
  EXPECT_EQ(dpf["rounds"].get<int64_t>(), dcf["rounds"].get<int64_t>() + relu_layers);
  EXPECT_LT(4 * dpf["key_bytes_per_image"]["client"].get<int64_t>(), dcf["key_bytes_per_image"]["client"].get<int64_t>());
  EXPECT_EQ(dpf["comparison_inputs"]["out_of_range"], 0);
  EXPECT_LE(dpf["comparison_inputs"]["bits_needed"].get<int>(), 24);
  EXPECT_GT(narrow["comparison_inputs"]["out_of_range"].get<int64_t>(), 0);
  const auto text = cli("pi run " + (d / "a") + " --data " + data + " --count 1 --quiet --relu-gate dpf:8");
  EXPECT_TRUE(test::contains(text.out, "ReLU gate dpf:8")) << text.out;
  EXPECT_TRUE(test::contains(text.out, "outside what dpf:8 compares exactly (their sign read from the low bits"))
      << text.out;
  EXPECT_TRUE(test::contains(text.out, "whole bill: dealer ")) << text.out;
  for (const char* k : {"dealer_s", "offline_s", "online_s", "key_bytes"})
    EXPECT_GT(dpf["bill_per_image"][k].get<double>(), 0) << k;
  EXPECT_TRUE(dpf["bill_per_image"]["keys_streamed"].get<bool>());  // no --keys: streamed, none on disk
  // Batches: one image's rounds for two images at a time, the modelled WAN time per image shared.
  const json batched = json_of(run + " --relu-gate dpf:24 --batch 2");
  EXPECT_EQ(batched["batch"], 2);
  EXPECT_EQ(batched["rounds"], dpf["rounds"]);
  EXPECT_EQ(batched["reference"]["argmax_equal"], 3);
  EXPECT_LT(batched["modelled"]["wan"]["seconds_per_image"].get<double>(),
            dpf["modelled"]["wan"]["seconds_per_image"].get<double>());
  const auto bad_batch = cli(run + " --batch 0");
  EXPECT_EQ(bad_batch.rc, 2) << bad_batch.out;
  EXPECT_TRUE(test::contains(bad_batch.out, "--batch must be in 1..1024")) << bad_batch.out;
  EXPECT_TRUE(test::contains(text.out, "(streamed to the parties, none on disk)")) << text.out;
  EXPECT_EQ(dpf["bill_per_image"]["key_bytes"].get<int64_t>(),
            dpf["key_bytes_per_image"]["server"].get<int64_t>() + dpf["key_bytes_per_image"]["client"].get<int64_t>());
  // The width from training images: pi calibrate, and pi run's dpf:auto.
  const json cal = json_of("pi calibrate " + (d / "a") + " --data " + data + " --count 32 --format json");
  EXPECT_EQ(cal["images"], 32);
  EXPECT_EQ(cal["split"], "train");
  EXPECT_EQ(cal["bits"].get<int>(), cal["bits_needed"].get<int>() + 4);
  ASSERT_EQ(cal["gates"].size(), 3u);
  EXPECT_EQ(cal["gates"][2]["relu_gate"], "dpf:" + std::to_string(cal["bits"].get<int>()));
  const json automatic = json_of(run + " --relu-gate dpf:auto --calibrate 32 --margin-bits 6");
  EXPECT_EQ(automatic["relu_gate"], "dpf:" + std::to_string(cal["bits_needed"].get<int>() + 6));
  EXPECT_EQ(automatic["calibration"]["bits_needed"], cal["bits_needed"]);
  EXPECT_EQ(automatic["reference"]["argmax_equal"], 3);
  const auto cost = cli("cost resnet18:alpha=0.25 --dataset cifar100 --protocol sci --relu-gate dpf:32");
  EXPECT_EQ(cost.rc, 0) << cost.out;
  EXPECT_TRUE(test::contains(cost.out, "with the ReLU gate dpf:32")) << cost.out;
  const auto batched_cost = cli("cost resnet18:alpha=0.25 --dataset cifar100 --protocol sci --relu-gate dpf:32 --batch 8");
  EXPECT_EQ(batched_cost.rc, 0) << batched_cost.out;
  EXPECT_TRUE(test::contains(batched_cost.out, "per image in batches of 8")) << batched_cost.out;
  for (const std::string bad : {"dpf:99", "dpf:", "dcf:7", "spline"}) {
    const auto r = cli("pi deal " + (d / "a") + " --out " + (d / "k") + " --relu-gate " + bad);
    EXPECT_EQ(r.rc, 2) << bad << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, "--relu-gate: ReLU gate '" + bad + "': accepted dcf")) << r.out;
  }
  const auto deal_auto = cli("pi deal " + (d / "a") + " --out " + (d / "k") + " --relu-gate dpf:auto");
  EXPECT_EQ(deal_auto.rc, 2) << deal_auto.out;
  EXPECT_TRUE(test::contains(deal_auto.out, "the dealer sees no data to choose N from")) << deal_auto.out;
  const auto margin = cli("pi calibrate " + (d / "a") + " --data " + data + " --margin-bits 40");
  EXPECT_EQ(margin.rc, 2) << margin.out;
  EXPECT_TRUE(test::contains(margin.out, "--margin-bits must be in 0..32")) << margin.out;
}

TEST(PiCli, ReduceMeasuresTheFrontierPrivately) {
  const test::ScratchDir d("pi-reduce");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());
  const auto r = cli("reduce --model resnet6:alpha=0.125 --data synthetic:1x12x12:4:64 --epochs 1 --batch 16 --threads 1 "
                     "--workers 0 --order S1,S2,S3,S4 --budget 1K --measure-pi 2 --out " + (d / "r"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(fs::exists(d / "r/frontier_latency.png"));
  const std::string report = dr::util::read_file(d / "r/report.md");
  EXPECT_TRUE(test::contains(report, "measured s")) << report;
  EXPECT_TRUE(test::contains(report, "non-colluding dealer")) << report;
  const auto results = json::parse(dr::util::read_file(d / "r/results.json"));
  for (const auto& row : results["steps"]) {
    EXPECT_GT(row["pi_mb"].get<double>(), 0) << row.dump();
    EXPECT_GT(row["pi_s"].get<double>(), 0) << row.dump();
  }
  // Measurements are kept: a second reduce measures nothing again.
  const auto again = cli("reduce --model resnet6:alpha=0.125 --data synthetic:1x12x12:4:64 --epochs 1 --batch 16 "
                         "--threads 1 --workers 0 --order S1,S2,S3,S4 --budget 1K --measure-pi 2 --out " + (d / "r"));
  ASSERT_EQ(again.rc, 0) << again.out;
  EXPECT_FALSE(test::contains(again.out, "[pi] private inference")) << again.out;
  // Another ReLU gate measures again, into files of its own; the report has the offline bill.
  const std::string base = "reduce --model resnet6:alpha=0.125 --data synthetic:1x12x12:4:64 --epochs 1 --batch 16 "
                           "--threads 1 --workers 0 --order S1,S2,S3,S4 --budget 1K --measure-pi 2 --out " + (d / "r");
  const auto dpf = cli(base + " --measure-pi-gate dpf:24");
  ASSERT_EQ(dpf.rc, 0) << dpf.out;
  EXPECT_TRUE(test::contains(dpf.out, "[pi] private inference")) << dpf.out;
  EXPECT_TRUE(fs::exists(d / "r/pi/baseline_resnet6_alpha-0.125_dpf-24.json"));
  EXPECT_TRUE(test::contains(dr::util::read_file(d / "r/report.md"), "offline s"));
  const auto bad = cli(base + " --measure-pi-gate dpf:3");
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_TRUE(test::contains(bad.out, "--measure-pi-gate: ReLU gate 'dpf:3'")) << bad.out;
}

// Budgets in what users pay: reduce plans DeepReDuce's networks and SNL's ReLU
// budgets from online megabytes, and ranks every point by that cost; the
// ranking's bytes are the runtime's exact figures, which pi run measures.
TEST(PiCli, ReduceBudgetsInWhatUsersPay) {
  const test::ScratchDir d("pi-budget");
  const test::EnvGuard state("DEEPREDUCE_STATE_DIR", (d / "state").c_str());
  const std::string data = "--data synthetic:1x12x12:4:64 --epochs 1 --batch 16 --threads 1 --workers 0 ";
  // Just above what culling S1 costs: DeepReDuce's pick is that network, SNL's the ReLUs that fit.
  const dr::arch::InputSpec in{{1, 12, 12}, 4};
  const double culled = static_cast<double>(
      dr::pi::private_cost(dr::arch::build_network("resnet6:alpha=0.125:cull=S1", in), dr::pi::load_time_model())
          .online_bytes) / 1e6;
  const std::string budget = std::to_string(culled + 1e-4);
  const auto r = cli("reduce --model resnet6:alpha=0.125 " + data + "--order S1,S2,S3,S4 --budget-mb " + budget +
                     " --method deepreduce,snl --snl-search-lr 0.01 --snl-lasso 1e-4 --snl-search-epochs 400 "
                     "--snl-finetune-epochs 1 --measure-pi 2 --out " + (d / "r"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "the costliest within each, in MB online: the runtime's exact online bytes")) << r.out;
  const auto plan = json::parse(dr::util::read_file(d / "r/plan.json"));
  EXPECT_EQ(plan["budgets"][0]["unit"], "MB online");
  EXPECT_EQ(plan["budgets"][0]["picks"], json({"resnet6:alpha=0.125:cull=S1"}));
  const auto results = json::parse(dr::util::read_file(d / "r/results.json"));
  std::map<std::string, double> measured;  // network -> pi run's online MB per image
  for (const auto& row : results["steps"]) measured[row["spec"].get<std::string>()] = row["pi_mb"].get<double>();
  const auto& ranked = results["ranked_by_cost"];
  ASSERT_EQ(ranked.size(), results["steps"].size());
  double last = 0;
  bool snl = false;
  for (const auto& row : ranked) {
    const std::string net = row["spec"];
    EXPECT_NEAR(row["mb"].get<double>(), measured.at(net), 1e-9) << net;  // exact formula = measured
    EXPECT_GE(row["mb"].get<double>(), last) << net;                       // cheapest first
    last = row["mb"].get<double>();
    if (row["method"] == "snl") {
      snl = true;
      EXPECT_LE(row["mb"].get<double>(), culled + 1e-4) << net;  // the planned ReLU budget meets the budget
    }
  }
  EXPECT_TRUE(snl);
  ASSERT_EQ(results["budgets"].size(), 1u);
  EXPECT_TRUE(test::contains(results["budgets"][0]["budget"].get<std::string>(), " MB")) << results["budgets"].dump();
  const std::string report = dr::util::read_file(d / "r/report.md");
  EXPECT_TRUE(test::contains(report, "## Ranked by what a private inference costs")) << report;
  EXPECT_TRUE(test::contains(report, "modelled, not measured")) << report;
  EXPECT_TRUE(test::contains(report, "non-colluding dealer")) << report;
  // Bad budgets: refused before any work, naming the flags.
  const std::string red = "reduce --model resnet6:alpha=0.125 " + data + "--order S1,S2,S3,S4 --out " + (d / "bad") + " ";
  const std::pair<std::string, std::string> cases[] = {
      {red + "--budget 1K --budget-mb 1", "give one kind of budget"},
      {red, "reduce needs budgets"},
      {red + "--budget-ms 10", "--budget-ms needs --link lan or --link wan"},
      {red + "--budget-mb 1 --link lan", "--link goes with --budget-ms"},
      {red + "--budget-ms 10 --link 5g", "--link '5g' is not accepted (accepted: lan, wan)"},
      {red + "--budget-mb -1", "--budget-mb: '-1' is not accepted"},
      {red + "--budget-mb 0.0001", "budget 0.0001 MB is below every candidate; the cheapest is"},
      {red + "--budget-mb 1000 --method snl", "is not below the teacher's cost"},
      {red + "--budget-mb 0.0001 --method snl", "is below what method snl can reach"},
      {red + "--budget-key-mb 0.0001 --method poly", "--budget-key-mb 0.0001 key MB per party is below what method poly"},
      {red + "--budget-key-mb 1 --budget-mb 1", "give one kind of budget"},
  };
  for (const auto& [args, says] : cases) {
    const auto b = cli(args);
    EXPECT_EQ(b.rc, 2) << args << "\n" << b.out;
    EXPECT_TRUE(test::contains(b.out, says)) << args << "\n" << b.out;
    EXPECT_FALSE(fs::exists(d / "bad")) << args;
  }
}
