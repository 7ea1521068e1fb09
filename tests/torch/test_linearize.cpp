// SNL through the CLI: `linearize` reaches each budget exactly and
// fine-tunes it, a killed search resumes to the same result, bad budgets and
// teachers are refused before any work, and `reduce --method all` puts the
// methods on one frontier.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "test_paths.h"
#include "test_util.h"
#include "arch/network.h"
#include "train/snl.h"
#include "train/trainer.h"
#include "util/fs.h"

namespace fs = std::filesystem;
namespace test = dr::test;
using dr::util::read_file;
using nlohmann::json;

namespace {

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

const std::string kData = "--data synthetic:1x12x12:4:256 --batch 32 --threads 1 --workers 0";
// A search fast enough for a test: masks move at most lr per Adam step.
const std::string kSearch = "--search-lr 0.01 --lasso 1e-4 --search-epochs 400 --epochs 2";

// A teacher trained once for every test here.
const std::string& teacher() {
  static const test::ScratchDir dir("snl-teacher");
  static const std::string run = dir / "teacher";
  static const bool trained = cli("train --model resnet6:alpha=0.125 " + kData + " --epochs 3 --out " + run).rc == 0;
  EXPECT_TRUE(trained);
  return run;
}

// A finished masked run (an SNL fine-tune of the teacher to 500 ReLUs).
const std::string& masked_run() {
  static const test::ScratchDir dir("snl-masked");
  static const bool made = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch + " " +
                               "--budget 500 --out " + (dir / "l")).rc == 0;
  EXPECT_TRUE(made);
  static const std::string run = dir / "l/budget-500";
  return run;
}

}  // namespace

TEST(LinearizeCli, ReachesEachBudgetExactlyAndFineTunes) {
  const test::ScratchDir d("snl");
  const auto r = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch + " --budget 2K,500 --out " + (d / "l"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "live ReLUs")) << r.out;  // progress toward the budget
  for (const int budget : {2000, 500}) {
    const std::string run = d / ("l/budget-" + std::to_string(budget));
    const auto result = json::parse(read_file(run + "/result.json"));
    EXPECT_EQ(result["relus"], budget);  // the binarised masks meet the budget exactly
    EXPECT_EQ(result["epochs"], 2);
    EXPECT_TRUE(json::parse(read_file(run + "/config.json"))["masked"].get<bool>());
    EXPECT_TRUE(fs::exists(run + "/masks.pt"));
    const auto count = cli("count " + run + " --format json");
    ASSERT_EQ(count.rc, 0) << count.out;
    EXPECT_EQ(json::parse(count.out)["relus"], budget);
  }
  const auto results = json::parse(read_file(d / "l/results.json"));
  EXPECT_EQ(results["points"].size(), 2u);
  EXPECT_EQ(results["stage_share"].size(), 3u);  // the start and each budget
  EXPECT_TRUE(fs::exists(d / "l/stage_share.png"));
  EXPECT_TRUE(fs::exists(d / "l/frontier.png"));
  // The search records its optimizer (Adam), not the fine-tunes' SGD settings.
  const auto search = json::parse(read_file(d / "l/search/config.json"))["train"];
  EXPECT_EQ(search["optimizer"], "adam");
  for (const char* sgd : {"schedule", "momentum", "nesterov", "wd", "warmup"}) EXPECT_FALSE(search.contains(sgd)) << sgd;
  // A finished linearize reuses everything.
  const auto again = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch + " --budget 2K,500 --out " +
                         (d / "l"));
  ASSERT_EQ(again.rc, 0) << again.out;
  EXPECT_TRUE(test::contains(again.out, "(finished, reused)")) << again.out;
  EXPECT_FALSE(test::contains(again.out, "search epoch 1")) << again.out;  // no search ran again
}

// The search trains on the same engine as a run and has its kill hook: a
// SIGKILL right after epoch 3's checkpoint, before metrics.jsonl is written,
// loses no line, and the resumed search reaches the same masks.
TEST(LinearizeCli, KilledSearchResumesToTheSameMasks) {
  const test::ScratchDir d("snl-kill");
  const std::string args = "linearize --teacher " + teacher() + " " + kData + " " + kSearch + " --budget 500 --out ";
  ASSERT_EQ(cli(args + (d / "whole")).rc, 0);
  {
    test::EnvGuard kill("DEEPREDUCE_KILL_AFTER_CHECKPOINT", "3");  // the fine-tunes have 2 epochs: only the search
    const auto killed = cli(args + (d / "killed"));
    ASSERT_NE(killed.rc, 0) << killed.out;
  }
  ASSERT_FALSE(fs::exists(d / "killed/search/result.json")) << "the search finished before the kill";
  const std::string metrics = read_file(d / "killed/search/metrics.jsonl");
  ASSERT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 2) << metrics;  // epoch 3 checkpointed, not yet listed
  const auto resumed = cli(args + (d / "killed"));
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_TRUE(test::contains(resumed.out, "resuming the SNL search in " + (d / "killed/search") + " after epoch 3"))
      << resumed.out;
  std::istringstream lines(read_file(d / "killed/search/metrics.jsonl"));
  int64_t epoch = 0;
  for (std::string l; std::getline(lines, l);) ASSERT_EQ(json::parse(l)["epoch"], ++epoch) << l;
  const std::string whole = read_file(d / "whole/search/metrics.jsonl");
  EXPECT_EQ(epoch, std::count(whole.begin(), whole.end(), '\n'));
  EXPECT_EQ(read_file(d / "killed/search/snapshots/500/masks.pt"), read_file(d / "whole/search/snapshots/500/masks.pt"));
  EXPECT_EQ(json::parse(read_file(d / "killed/budget-500/result.json"))["test_acc"],
            json::parse(read_file(d / "whole/budget-500/result.json"))["test_acc"]);
}

TEST(LinearizeCli, BadBudgetsAndTeachersAreRefusedBeforeWork) {
  const test::ScratchDir d("snl-bad");
  ASSERT_EQ(cli("train --model resnet6:alpha=0.125 --data synthetic:1x8x8:4:64 --epochs 1 --batch 16 --threads 1 "
                "--workers 0 --out " + (d / "small")).rc, 0);
  const std::string base = "linearize " + kData + " --out " + (d / "out");
  const std::pair<std::string, std::string> cases[] = {
      {"--teacher " + teacher() + " --budget 5K", "not below the 3424 ReLUs"},   // above the teacher's count
      {"--teacher " + teacher() + " --budget 0", "budget '0'"},
      {"--teacher " + (d / "nothing") + " --budget 1K", "not a finished run"},
      {"--teacher " + (d / "small") + " --budget 1K", "was trained for input 1x8x8"},
      {"--teacher " + teacher() + " --budget 1K --from resnet6:cull=S9", "unknown stage 'S9'"},
      {"--teacher " + teacher() + " --budget 1K --lasso 0", "--lasso"},
  };
  for (const auto& [args, says] : cases) {
    const auto r = cli(base + " " + args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, says)) << args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d / "out/search")) << args;
  }
}

TEST(LinearizeCli, MismatchedAndMaskedTeachersAreRefusedBeforeWork) {
  const test::ScratchDir d("snl-teachers");
  const std::string same = "--data synthetic:1x12x12:4:256 --batch 32 --threads 1 --workers 0";
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      // Another class count than --data's: refused up front, naming both.
      {"linearize --teacher " + teacher() + " --data synthetic:1x12x12:10:256 --threads 1 --budget 500",
       {"teacher '" + teacher() + "'", "with 4 classes", "synthetic:1x12x12:10:256 gives 1x12x12 with 10 classes"}},
      {"reduce --model resnet6:alpha=0.125 --teacher " + teacher() +
           " --data synthetic:1x12x12:10:256 --threads 1 --budget 500 --method snl",
       {"with 4 classes", "with 10 classes"}},
      // A masked teacher, or a masked start.
      {"linearize --teacher " + masked_run() + " " + same + " --budget 100", {"is a masked run", "all-ReLU teacher"}},
      {"linearize --teacher " + teacher() + " --from " + masked_run() + " " + same + " --budget 100",
       {"--from run", "is a masked run"}},
      // SNL and combined start from the teacher's weights: it must be the --model network.
      {"reduce --model resnet10:alpha=0.125 --teacher " + teacher() + " " + same + " --budget 500 --method snl",
       {"is resnet6:alpha=0.125, not the --model network resnet10:alpha=0.125"}},
      {"reduce --model resnet10:alpha=0.125 --teacher " + teacher() + " " + same + " --budget 500 --method combined",
       {"not the --model network"}},
      {"reduce --model resnet10:alpha=0.125 --teacher " + teacher() + " " + same + " --budget 1K --init-teacher",
       {"not the --model network", "--init-teacher"}},
      {"reduce --model resnet6:alpha=0.125 --teacher " + masked_run() + " " + same + " --budget 100 --method snl",
       {"is a masked run"}},
  };
  for (const auto& [args, says] : cases) {
    const auto r = cli(args + " --out " + (d / "out"));
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    for (const auto& s : says) EXPECT_TRUE(test::contains(r.out, s)) << args << "\n" << s << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d / "out")) << args;
  }
  // A KD-only teacher (DeepReDuce's candidates) may be another network.
  const auto kd = cli("reduce --model resnet10:alpha=0.125 --teacher " + teacher() + " " + same +
                      " --budget 1K --dry-run --out " + (d / "kd"));
  EXPECT_EQ(kd.rc, 0) << kd.out;
}

TEST(LinearizeCli, ErrorsNameTheFlagTypedBeforeWork) {
  const test::ScratchDir d("snl-flags");
  const std::string lin = "linearize --teacher " + teacher() + " " + kData + " --budget 500 --out " + (d / "l") + " ";
  const std::string red = "reduce --model resnet6:alpha=0.125 " + kData + " --budget 500 --method snl --out " +
                          (d / "r") + " ";
  const std::pair<std::string, std::string> cases[] = {
      {lin + "--search-lr nan", "--search-lr must be"},
      {lin + "--search-epochs -1", "--search-epochs: must be in"},
      {lin + "--search-kd-lambda -1", "--search-kd-lambda must be"},
      {lin + "--lasso inf", "--lasso must be"},
      {lin + "--lasso-growth 0.5", "--lasso-growth must be"},
      {lin + "--threshold 1", "--threshold must be"},
      {lin + "--loss-spike 0.5", "--loss-spike must be 0 (off) or a factor above 1 (got 0.5)"},
      {red + "--snl-loss-spike 1", "--snl-loss-spike must be 0 (off) or a factor above 1"},
      {lin + "--epochs-per-point -2", "--epochs-per-point must be"},
      {red + "--snl-lasso inf", "--snl-lasso must be"},
      {red + "--snl-search-lr nan", "--snl-search-lr must be"},
      {red + "--snl-search-epochs 0", "--snl-search-epochs: must be"},
      // reduce has every row of the search's table (train::search_settings()), not only three.
      {red + "--snl-threshold 1", "--snl-threshold must be"},
      {red + "--snl-lasso-growth 0.5", "--snl-lasso-growth must be"},
      {red + "--snl-search-kd-lambda -1", "--snl-search-kd-lambda must be"},
      {red + "--snl-lasso-patience -1", "--snl-lasso-patience: must be in"},
      {red + "--snl-finetune-epochs 0", "--snl-finetune-epochs must be"},
      {red + "--snl-epochs-per-point -1", "--snl-epochs-per-point must be"},
      {red + "--plot-format pdf", "--plot-format 'pdf' is not accepted (accepted: png, svg)"},
  };
  for (const auto& [args, says] : cases) {
    const auto r = cli(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, says)) << args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d / "l")) << args;
    EXPECT_FALSE(fs::exists(d / "r")) << args;  // no teacher trained first
  }
  // The fine-tunes' help gives their own defaults (SNL: no Nesterov).
  const auto help = cli("linearize --help");
  EXPECT_TRUE(test::contains(help.out, "Nesterov momentum (default off)")) << help.out;
}

// The loss-spike rule: an epoch whose task loss mean rises past the factor
// times the last epoch's goes back to that epoch's checkpoint with Adam's lr
// halved, at most 3 times; then the search stops with the last finished epoch
// kept, and a resume may change the rule (it is not compared) and go on. A
// factor just above 1 makes the rule fire as the lasso removes ReLUs.
TEST(LinearizeCli, ALossSpikeGoesBackAnEpochWithHalfTheLr) {
  const test::ScratchDir d("snl-spike");
  // 256 images in batches of 8: 32 steps an epoch, the rule's first look.
  const std::string data = "--data synthetic:1x12x12:4:256 --batch 8 --threads 1 --workers 0";
  const std::string args = "linearize --teacher " + teacher() + " " + data +
                           " --search-lr 0.01 --lasso 1e-3 --search-epochs 60 --epochs 1 --budget 500 --out " + (d / "l");
  const auto r = cli(args + " --loss-spike 1.0001");
  ASSERT_NE(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "with Adam lr 0.01 -> 0.005 (return 1 of at most 3)")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "-> 0.0025 (return 2 of at most 3)")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "-> 0.00125 (return 3 of at most 3)")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "after 3 returns with a halved lr; the last finished epoch is kept in")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "Try a lower --search-lr")) << r.out;
  // Every finished epoch is listed once, at the lr it ran with (halved by
  // each return before it: a return may succeed, and its epoch go on); the
  // task loss beside the total.
  std::istringstream lines(read_file(d / "l/search/metrics.jsonl"));
  int64_t epoch = 0;
  double lr = 0.01;
  for (std::string l; std::getline(lines, l);) {
    const auto m = json::parse(l);
    ASSERT_EQ(m["epoch"], ++epoch) << l;
    const double now = m["search_lr"].get<double>();
    EXPECT_TRUE(now == lr || now == lr / 2 || now == lr / 4) << l;
    EXPECT_GE(now, 0.0025) << l;  // the third return stops the search
    lr = now;
    EXPECT_LT(m["train_task_loss"].get<double>(), m["train_loss"].get<double>()) << l;  // without the lasso term
  }
  ASSERT_GE(epoch, 1);
  // Off on resume: the search goes on from its last epoch to the budget.
  const auto resumed = cli(args + " --loss-spike 0");
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_TRUE(test::contains(resumed.out, "after epoch " + std::to_string(epoch))) << resumed.out;
  EXPECT_EQ(json::parse(read_file(d / "l/budget-500/result.json"))["relus"], 500);
}

// --granularity channel: one score per channel; each snapshot keeps whole
// channels within its budget (channel-wise masks), fine-tuned and run privately.
TEST(LinearizeCli, ChannelGranularityKeepsWholeChannels) {
  const test::ScratchDir d("snl-channel");
  const auto r = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch +
                     " --budget 2K,600 --replace poly --granularity channel --out " + (d / "l"));
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const int budget : {2000, 600}) {
    const std::string run = d / ("l/budget-" + std::to_string(budget));
    const dr::arch::Network net = dr::train::run_network(run);
    EXPECT_LE(net.totals().relus, budget);
    EXPECT_GT(net.totals().relus, budget / 2);  // filled as far as whole channels go
    for (const auto* l : net.layers())
      if (l->op == dr::arch::Op::ReLU && l->live) {
        ASSERT_TRUE(l->mask && l->mask->channelwise) << l->name;
      }
  }
  EXPECT_EQ(json::parse(read_file(d / "l/search/config.json"))["granularity"], "channel");
  const auto pi = cli("pi run " + (d / "l/budget-600") + " --data synthetic:1x12x12:4:256 --count 4 --format json --quiet");
  ASSERT_EQ(pi.rc, 0) << pi.out;
  EXPECT_EQ(json::parse(pi.out)["agreement"], 1.0);
  const auto bad = cli("linearize --teacher " + teacher() + " " + kData + " --budget 600 --granularity pixel --out " + (d / "b"));
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_TRUE(test::contains(bad.out, "accepted: element, channel")) << bad.out;
}

// --replace poly: every ReLU the search removes becomes its channel's trained
// quadratic; the budgets count ReLUs, the polynomial elements are the rest,
// and the fine-tuned network keeps its coefficients in weights.pt.
TEST(LinearizeCli, PolynomialReplacementKeepsTheRestAsQuadratics) {
  const test::ScratchDir d("poly");
  const auto r = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch + " --replace poly --budget 2K,500 --out " +
                     (d / "l"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "Polynomial-replacement frontier")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "polynomial-replacement search (AutoReP-style)")) << r.out;
  const auto start = json::parse(cli("count " + teacher() + " --format json").out);
  for (const int budget : {2000, 500}) {
    const std::string run = d / ("l/budget-" + std::to_string(budget));
    const auto count = json::parse(cli("count " + run + " --format json").out);
    EXPECT_EQ(count["relus"], budget);
    EXPECT_EQ(count["polys"].get<int64_t>(), start["relus"].get<int64_t>() - budget);  // no identity elements
    const auto eval = cli("eval " + run);
    EXPECT_TRUE(test::contains(eval.out, " polynomial elements")) << eval.out;  // eval names them beside the ReLUs
    // The coefficients trained with the rest: in weights.pt, no longer the fit they started from.
    const auto py = test::run_command("/usr/bin/python3 -c \"import torch; w = torch.load('" + run +
                                      "/weights.pt'); k = [n for n in w if n.endswith('.poly')]; "
                                      "print(len(k), all(w[n].shape[0] == 3 for n in k))\"");
    if (py.rc == 0) {
      EXPECT_TRUE(test::contains(py.out, "True")) << py.out;
    }
  }
  const auto results = json::parse(read_file(d / "l/results.json"));
  EXPECT_EQ(results["method"], "poly");
  EXPECT_EQ(results["search"]["replace"], "poly");
  EXPECT_EQ(results["search"]["removed"], "may-return");  // the default: AutoReP's loop
  json old = json::parse(read_file(d / "l/search/config.json"));
  old.erase("removed");  // a polynomial search recorded before --removed let them return
  EXPECT_EQ(dr::train::SnlOptions::from_json(old).removed, "may-return");
  EXPECT_EQ(results["search"]["flip_rate"], 0.01);  // the default pace
  old.erase("flip_rate");  // a search recorded before the pacing flipped every element past the band at once
  EXPECT_EQ(dr::train::SnlOptions::from_json(old).flip_rate, 0.0);
  EXPECT_TRUE(test::contains(read_file(d / "l/report.md"), "at most 1% of the live ReLUs flipping a step"));
  EXPECT_GT(results["points"][0]["polys"].get<int64_t>(), 0);
  EXPECT_TRUE(test::contains(read_file(d / "l/report.md"), "# Polynomial replacement")) << read_file(d / "l/report.md");
  // It runs privately and agrees with its float model.
  const auto pi = cli("pi run " + (d / "l/budget-500") + " --data synthetic:1x12x12:4:256 --count 8 --format json");
  ASSERT_EQ(pi.rc, 0) << pi.out;
  const auto s = json::parse(pi.out.substr(pi.out.find('{')));
  EXPECT_EQ(s["relus"], 500);
  EXPECT_EQ(s["polys"], start["relus"].get<int64_t>() - 500);
  EXPECT_GE(s["agreement"].get<double>(), 0.99);
  // A search of the other kind is not continued in the same directory.
  const auto other = cli("linearize --teacher " + teacher() + " " + kData + " " + kSearch + " --budget 2K,500 --out " + (d / "l"));
  EXPECT_NE(other.rc, 0) << other.out;
  EXPECT_TRUE(test::contains(other.out, "holds a search with --replace poly, not identity")) << other.out;
}

TEST(ReduceCli, MethodsShareOneFrontier) {
  const test::ScratchDir d("methods");
  const auto r = cli("reduce --model resnet6:alpha=0.125 " + kData + " --epochs 2 --order S1,S2,S3,S4 --budget 1K,500 "
                     "--method all --snl-search-lr 0.01 --snl-lasso 1e-4 --snl-search-epochs 400 "
                     "--snl-finetune-epochs 1 --out " + (d / "r"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto results = json::parse(read_file(d / "r/results.json"));
  std::set<std::string> methods;
  for (const auto& row : results["steps"]) methods.insert(row["method"].get<std::string>());
  EXPECT_EQ(methods, (std::set<std::string>{"-", "deepreduce", "snl", "combined", "poly"}));
  EXPECT_TRUE(fs::exists(d / "r/snl/report.md"));
  EXPECT_TRUE(fs::exists(d / "r/combined/report.md"));
  const std::string report = read_file(d / "r/report.md");
  EXPECT_TRUE(test::contains(report, "DeepReDuce + SNL starts from DeepReDuce's `resnet6:alpha=0.125:cull=S1`")) << report;
  // What each method trained, and the settings behind the SNL points.
  EXPECT_FALSE(test::contains(report, "Every network trained")) << report;
  EXPECT_TRUE(test::contains(report, "the DeepReDuce networks trained for 2 epoch(s)")) << report;
  EXPECT_TRUE(test::contains(report, "lasso 0.0001 x1.10, at most 400 epochs")) << report;
  EXPECT_EQ(results["methods"], json({"deepreduce", "snl", "combined", "poly"}));
  EXPECT_TRUE(fs::exists(d / "r/poly/report.md"));
  // Polynomial elements get a column of their own, and the poly points fill it.
  EXPECT_TRUE(test::contains(report, "poly elements")) << report;
  // Every point ranked by what its private inference costs (WAN latency when the budgets are ReLUs).
  EXPECT_TRUE(test::contains(report, "Ranked by ms on WAN in deepreduce's private runtime")) << report;
  EXPECT_EQ(results["ranked_by_cost"].size(), results["steps"].size());
  EXPECT_EQ(results["snl"]["search"]["optimizer"], "adam");
  EXPECT_EQ(results["snl"]["search"]["lasso"], 1e-4);
  EXPECT_EQ(results["snl"]["search"]["max_epochs"], 400);
  EXPECT_EQ(results["snl"]["finetune"]["epochs"], 1);
  EXPECT_EQ(results["snl"]["finetune"]["precision"], "fp32");  // reduce's --precision, as its candidates'
  EXPECT_EQ(results["snl"]["finetune"]["schedule"], "cosine");
  EXPECT_EQ(results["snl"]["combined_start"], "resnet6:alpha=0.125:cull=S1");
  // One provenance, taken when the reduce started, in both files.
  const std::string started = results["provenance"]["started"];
  EXPECT_TRUE(test::contains(report, "Reduce started " + started)) << report;
  const auto bad = cli("reduce --model resnet6:alpha=0.125 " + kData + " --budget 1K --method snl,magic --out " + (d / "x"));
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_TRUE(test::contains(bad.out, "accepted: deepreduce, snl, combined")) << bad.out;
}
