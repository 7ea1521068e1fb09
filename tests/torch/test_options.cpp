// Issue 16, second round: options that were taken silently or refused
// unclearly, one test each (SNL options of reduce whatever the method,
// --measure-pi bounds, budgets at the 2^62 limit, empty values, repeated
// stages, --momentum 0 with Nesterov), and the SNL search saying where it is
// going (the forecast, its early warning) and cleaning what a killed one left.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "planner/candidates.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/snl.h"
#include "util/fs.h"

namespace fs = std::filesystem;
namespace test = dr::test;
using dr::train::BudgetForecast;
using dr::train::SearchSample;

namespace {

test::CommandResult cli(const std::string& args) { return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args); }

const std::string kData = "--data synthetic:1x12x12:4:256 --batch 32 --threads 1 --workers 0";

// A teacher trained once for the SNL tests here (8 steps an epoch).
const std::string& teacher() {
  static const test::ScratchDir dir("opts-teacher");
  static const std::string run = dir / "teacher";
  static const bool trained = cli("train --model resnet6:alpha=0.125 " + kData + " --epochs 3 --out " + run).rc == 0;
  EXPECT_TRUE(trained);
  return run;
}

// Refused with exit 2, the message holding every one of `says`, before any
// file under `out` is written.
void expect_refused(const std::string& args, const std::vector<std::string>& says, const std::string& out) {
  const auto r = cli(args);
  EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
  for (const auto& s : says) EXPECT_TRUE(test::contains(r.out, s)) << args << "\nshould say: " << s << "\n" << r.out;
  EXPECT_FALSE(fs::exists(out)) << args;
}

}  // namespace

TEST(Options, ReduceChecksEverySnlOptionWhateverTheMethod) {
  const test::ScratchDir d("opts-snl");
  // No data file exists: each error must come before any read.
  const std::string reduce = "reduce --model resnet6:alpha=0.125 --data cifar10:" + (d / "none") + " --budget 1K --out " +
                             (d / "r") + " ";
  const std::pair<std::string, std::string> cases[] = {
      {"--snl-search-lr nan", "--snl-search-lr"},   {"--snl-search-lr -1", "--snl-search-lr"},
      {"--snl-search-lr inf", "--snl-search-lr"},   {"--snl-lasso 5", "--snl-lasso"},
      {"--snl-lasso -1", "--snl-lasso"},            {"--snl-search-epochs 0", "--snl-search-epochs"},
      {"--snl-search-epochs -1", "--snl-search-epochs"}, {"--snl-finetune-epochs 0", "--snl-finetune-epochs"},
      {"--snl-epochs-per-point -1", "--snl-epochs-per-point"}};
  for (const auto& [option, name] : cases) expect_refused(reduce + option, {name}, d / "r");  // --method deepreduce
}

TEST(Options, MeasurePiIsBoundedBeforeWork) {
  const test::ScratchDir d("opts-pi");
  const std::string reduce = "reduce --model resnet6:alpha=0.125 --threads 1 --workers 0 --budget 1K --order "
                             "S1,S2,S3,S4 --out " + (d / "r") + " ";
  // Beyond any dataset's test split: refused on the text, in the dry run too.
  expect_refused(reduce + "--data fashion-mnist:" + (d / "none") + " --dry-run --measure-pi 99999999999",
                 {"--measure-pi", "0..10000"}, d / "r");
  // More than --limit keeps.
  expect_refused(reduce + "--data fashion-mnist:" + (d / "none") + " --dry-run --limit 100 --measure-pi 200",
                 {"--measure-pi 200", "100 test images --limit keeps"}, d / "r");
  // More than the data's test split (64 / 4 = 16 images), counted once read: before the teacher.
  const auto r = cli(reduce + "--data synthetic:1x8x8:4:64 --measure-pi 20");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_TRUE(test::contains(r.out, "--measure-pi 20 is more than the 16 test images of --data synthetic:1x8x8:4:64"))
      << r.out;
  EXPECT_FALSE(fs::exists(d / "r/teacher"));
}

TEST(Options, BudgetsAboveTheLimitAreRefusedExactly) {
  using dr::planner::parse_budgets;
  const int64_t limit = int64_t(1) << 62;
  // A double rounds each of these to 2^62: the check is made on the decimal text.
  for (const std::string over : {"4611686018427387905", "4611686018427387904.5", "4611686018427387.905K",
                                 "4.611686018427387905e18", "4611686018427.387905M"}) {
    try {
      parse_budgets(over);
      ADD_FAILURE() << over << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(test::contains(e.what(), "budget '" + over + "' is too large")) << e.what();
    }
  }
  for (const std::string at : {"4611686018427387904", "4611686018427387.904K", "4.611686018427387904e18"})
    EXPECT_EQ(parse_budgets(at), std::vector<int64_t>{limit}) << at;
  EXPECT_EQ(parse_budgets("1.5M,50K,0.0015K,12e3,2.5"), (std::vector<int64_t>{1500000, 50000, 2, 12000, 3}));
  for (const std::string bad : {"0.5", "0x10", "1e", "1.2.3", ".", "e5", "1e-400"})
    EXPECT_THROW(parse_budgets(bad), std::invalid_argument) << bad;
  const test::ScratchDir d("opts-budget");
  expect_refused("reduce --model resnet6:alpha=0.125 --data fashion-mnist --dry-run --budget 4611686018427387905 --out " +
                     (d / "r"),
                 {"budget '4611686018427387905' is too large"}, d / "r");
}

TEST(Options, EmptyValuesAreRefusedLikeAnyBadValue) {
  const test::ScratchDir d("opts-empty");
  const std::string train = "train --model resnet6:alpha=0.125 --data cifar10:" + (d / "none") + " --out " + (d / "t") + " ";
  for (const std::string option : {"--lr", "--wd", "--warmup", "--kd-lambda", "--schedule", "--epochs"})
    expect_refused(train + option + " ''", {option}, d / "t");
  const auto wd = cli(train + "--wd ''");
  EXPECT_TRUE(test::contains(wd.out, "--wd: an empty value is not accepted (expected FLOAT)")) << wd.out;
  const std::string reduce = "reduce --model resnet6:alpha=0.125 --data cifar10:" + (d / "none") + " --budget 1K --out " +
                             (d / "r") + " ";
  for (const std::string option : {"--order", "--teacher", "--snl-lasso", "--measure-pi"})
    expect_refused(reduce + option + " ''", {option}, d / "r");
  expect_refused("linearize --teacher " + (d / "none") + " --data cifar10 --budget 1K --lasso '' --out " + (d / "l"),
                 {"--lasso"}, d / "l");
  expect_refused("count resnet18 --dataset ''", {"--dataset"}, d / "none");
}

TEST(Options, RepeatedStageInASpecIsRefused) {
  std::string many = "resnet18:cull=S1";
  for (int i = 0; i < 10000; ++i) many += ",S1";
  for (const std::string& spec : {std::string("resnet18:cull=S1,S1"), many}) {
    const auto r = cli("count " + spec);
    EXPECT_EQ(r.rc, 2) << r.out.substr(0, 300);
    EXPECT_TRUE(test::contains(r.out, "stage 'S1' given twice in cull")) << r.out.substr(0, 300);
  }
}

TEST(Options, MomentumZeroNeedsNoNesterov) {
  const test::ScratchDir d("opts-momentum");
  expect_refused("train --model resnet6:alpha=0.125 --data cifar10:" + (d / "none") + " --momentum 0 --out " + (d / "t"),
                 {"--momentum 0 needs --no-nesterov"}, d / "t");
  const auto r = cli("train --model resnet6:alpha=0.125 --data synthetic:1x8x8:4:64 --threads 1 --workers 0 --batch 16 "
                     "--epochs 1 --momentum 0 --no-nesterov --out " + (d / "ok"));
  EXPECT_EQ(r.rc, 0) << r.out;
}

// --- where the SNL search is going -------------------------------------------

TEST(SearchForecast, ProjectsEachBudgetAtTheRecentRate) {
  // 1,000 ReLUs an epoch, 10 s an epoch.
  const std::vector<SearchSample> falling = {{1, 10, 10000}, {2, 20, 9000}, {3, 30, 8000}};
  const auto f = dr::train::forecast_search(falling, {5000, 7000}, 0.5);
  EXPECT_DOUBLE_EQ(f.rate, 1000);
  ASSERT_EQ(f.budgets.size(), 2u);
  EXPECT_EQ(f.budgets[0].budget, 7000);  // reached first, listed first
  EXPECT_DOUBLE_EQ(f.budgets[0].epoch, 4);
  EXPECT_DOUBLE_EQ(f.budgets[0].seconds, 10);
  EXPECT_DOUBLE_EQ(f.budgets[1].epoch, 6);
  EXPECT_DOUBLE_EQ(f.budgets[1].seconds, 30);
  EXPECT_FALSE(f.budgets[1].at_least);
  EXPECT_EQ(dr::train::forecast_text(f), "-1000/epoch; 7000 at epoch 4 (in 0:00:10), 5000 at epoch 6 (in 0:00:30)");
  EXPECT_EQ(dr::train::forecast_text(f, 1), "-1000/epoch; 7000 at epoch 4 (in 0:00:10)");
  // A budget already reached: at this epoch's end.
  const auto reached = dr::train::forecast_search(falling, {8000}, 0.5);
  EXPECT_DOUBLE_EQ(reached.budgets[0].epoch, 3);
  EXPECT_DOUBLE_EQ(reached.budgets[0].seconds, 0);
}

TEST(SearchForecast, BeforeTheCountFallsTheAdamBoundIsALowerBound) {
  // Flat for the first epoch, 25 s an epoch; no mask can reach the threshold before epoch 41.25.
  const std::vector<SearchSample> flat = {{0.25, 5, 108544}, {1, 25, 108544}};
  const auto f = dr::train::forecast_search(flat, {5000}, 41.25);
  EXPECT_DOUBLE_EQ(f.rate, 0);
  ASSERT_EQ(f.budgets.size(), 1u);
  EXPECT_TRUE(f.budgets[0].at_least);
  EXPECT_DOUBLE_EQ(f.budgets[0].epoch, 41.25);
  EXPECT_NEAR(f.budgets[0].seconds, 40.25 * 80 / 3, 1e-6);
  EXPECT_EQ(dr::train::forecast_text(f), "not falling yet; 5000 at epoch >= 42 (in >= 0:17:53)");
  // Past that epoch and still flat: not at this rate.
  const auto stalled = dr::train::forecast_search(flat, {5000}, 0.5);
  EXPECT_TRUE(std::isinf(stalled.budgets[0].epoch));
  EXPECT_EQ(dr::train::forecast_text(stalled), "not falling yet; 5000: not at this rate");
  // One look: no time per epoch yet.
  const auto one = dr::train::forecast_search({{0.1, 1, 100}}, {50}, 3);
  EXPECT_DOUBLE_EQ(one.budgets[0].epoch, 3);
  EXPECT_TRUE(std::isnan(one.budgets[0].seconds));
  EXPECT_EQ(dr::train::forecast_text(one), "not falling yet; 50 at epoch >= 3");
}

TEST(SearchForecast, LinearizeWarnsEarlyWhenFarPastWhatWasAsked) {
  const test::ScratchDir d("opts-warn");
  // SNL's paper settings on 256 images (8 steps an epoch): no mask can fall
  // to 0.01 before epoch 0.99 / (1e-3 x 8) = 123.75, far past --epochs 1.
  const auto r = cli("linearize --teacher " + teacher() + " " + kData + " --budget 500 --epochs 1 --search-epochs 2 --out " +
                     (d / "l"));
  EXPECT_EQ(r.rc, 1) << r.out;  // the search stops at --search-epochs 2, short of its budget
  for (const std::string says :
       {"warning: the SNL search is projected to reach budget 500 at epoch >= 124", "more than 10x the 1 epoch(s) a point "
        "is meant to take (--epochs 1)", "after its last epoch (--search-epochs 2)", "this data gives 8 steps an epoch",
        "--search-lr 5e-3 --lasso 5e-4"})
    EXPECT_TRUE(test::contains(r.out, says)) << says << "\n" << r.out;
  EXPECT_EQ(r.out.find("warning:"), r.out.rfind("warning:")) << r.out;  // once
  EXPECT_TRUE(test::contains(r.out, "search epoch 1: live ReLUs")) << r.out;
  EXPECT_TRUE(test::contains(r.out, "not falling yet; 500 at epoch >= 124 (in >= ")) << r.out;
  // Settings that reach the budget within what was asked: no warning.
  const auto ok = cli("linearize --teacher " + teacher() + " " + kData + " --budget 2K --search-lr 0.01 --lasso 1e-4 "
                      "--search-epochs 400 --epochs 2 --out " + (d / "ok"));
  EXPECT_EQ(ok.rc, 0) << ok.out;
  EXPECT_FALSE(test::contains(ok.out, "warning:")) << ok.out;
  EXPECT_TRUE(test::contains(ok.out, "2000 at epoch")) << ok.out;
}

TEST(SearchForecast, ResumedLinearizeRemovesStaleTemporaries) {
  const test::ScratchDir d("opts-stale");
  const std::string args = "linearize --teacher " + teacher() + " " + kData + " --budget 2K --search-lr 0.01 --lasso 1e-4 "
                           "--epochs 1 --out " + (d / "l");
  // A search stopped after one epoch, as a kill leaves it: a checkpoint, no result.
  ASSERT_EQ(cli(args + " --search-epochs 1").rc, 1);
  ASSERT_TRUE(fs::exists(d / "l/search/checkpoint.pt"));
  // Left by killed processes (no process has this id), and one of a live process (ours).
  const std::vector<std::string> stale = {d / "l/search/metrics.jsonl.tmp.999999999",
                                          d / "l/search/snapshots/2000/masks.pt.tmp.999999999",
                                          d / "l/report.md.tmp.999999999"};
  for (const auto& f : stale) dr::util::write_file_atomic(f, "partial");
  const std::string live = d / ("l/search/checkpoint.pt.tmp." + std::to_string(::getpid()));
  dr::util::write_file_atomic(live, "in progress");
  const auto r = cli(args + " --search-epochs 400");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(test::contains(r.out, "resuming the SNL search")) << r.out;
  for (const auto& f : stale) EXPECT_FALSE(fs::exists(f)) << f;
  EXPECT_TRUE(fs::exists(live));
}
