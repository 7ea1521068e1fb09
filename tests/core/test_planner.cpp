// Criticality, the DeepReDuce candidate plan, budgets, shards, the frontier.
#include <gtest/gtest.h>

#include <set>

#include "planner/criticality_score.h"
#include "planner/pareto.h"
#include "planner/candidates.h"

using namespace dr;
using namespace dr::planner;

namespace {

void expect_criticality(std::vector<int64_t> relus, std::vector<double> acc_kd, std::vector<double> expected) {
  std::vector<StageRow> rows;
  for (size_t i = 0; i < relus.size(); ++i)
    rows.push_back({"S" + std::to_string(i + 1), relus[i], std::nullopt, acc_kd[i], 0});
  score_criticality(rows);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_NEAR(rows[i].criticality, expected[i], 0.05) << rows[i].stage;
}

}  // namespace

TEST(Criticality, AppendixTable10Vgg16) {
  expect_criticality({139264, 73728, 57344, 32768, 14336}, {81.4, 85.3, 85.1, 77.7, 66.0},
                     {10.90, 14.31, 14.40, 9.17, 0.00});
}

TEST(Criticality, AppendixTable12MobileNets) {
  expect_criticality({131072, 114688, 57344, 94208, 14336}, {34.16, 50.65, 54.20, 61.10, 45.45},
                     {0.00, 11.83, 15.09, 19.60, 9.37});
  expect_criticality({196600, 110600, 58400, 27600, 32400}, {34.25, 46.93, 53.06, 57.28, 50.49},
                     {0.00, 9.12, 14.15, 18.26, 12.73});
}

TEST(Criticality, AppendixTable14ResNet56) {
  expect_criticality({311296, 147456, 73728}, {59.45, 67.97, 69.22}, {0.0, 6.0, 7.2});
}

TEST(Criticality, OrderAndMissingAccuracies) {
  std::vector<StageRow> rows = {{"S1", 1000, 50.0, std::nullopt, 0}, {"S2", 1000, 70.0, std::nullopt, 0},
                                {"S3", 1000, 60.0, std::nullopt, 0}};
  score_criticality(rows);  // falls back to the accuracies without KD
  EXPECT_EQ(least_to_most_critical(rows), (std::vector<std::string>{"S1", "S3", "S2"}));
  rows[1].acc_kd = 71.0;  // mixed
  EXPECT_THROW(score_criticality(rows), std::invalid_argument);
}

// Budgets in another measure (what a private inference costs): per budget the
// costliest candidates within it; the cheapest is named when none fits.
TEST(Plan, BudgetsInAnotherMeasurePickTheCostliestWithin) {
  const auto in = arch::dataset_input("cifar10");
  const auto cands = deepreduce_candidates("resnet18:alpha=0.25", {"S1", "S4", "S2", "S3"}, in);
  // A measure unlike the ReLU order: ReLUs plus a large charge per culled stage.
  const auto cost = [](const Candidate& c) { return static_cast<double>(c.relus) + 50000.0 * c.culled; };
  const auto show = [](double v) { return std::to_string(static_cast<int64_t>(v)) + " units"; };
  const auto plans = plan_budgets(cands, {{120000, "120K units"}, {80000, "80K units"}}, 2, cost, show);
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[0].text, "120K units");
  for (const auto& p : plans) {
    ASSERT_EQ(p.picks.size(), 2u);
    EXPECT_GE(cost(p.picks[0]), cost(p.picks[1]));
    for (const auto& c : p.picks) EXPECT_LE(cost(c), p.budget) << c.spec;
    // Nothing left out costs more within the budget than the last pick.
    for (const auto& c : cands) {
      if (cost(c) <= p.budget && cost(c) > cost(p.picks[1])) {
        EXPECT_TRUE(c.spec == p.picks[0].spec || c.spec == p.picks[1].spec) << c.spec;
      }
    }
  }
  double cheapest = 1e18;
  for (const auto& c : cands) cheapest = std::min(cheapest, cost(c));
  try {
    plan_budgets(cands, {{1, "1 unit"}}, 1, cost, show);
    FAIL() << "a budget below every candidate was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("budget 1 unit is below every candidate; the cheapest is"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(show(cheapest)), std::string::npos) << e.what();
  }
}

TEST(Plan, ResNet18Cifar100Budgets) {
  const auto in = arch::dataset_input("cifar100");
  const std::vector<std::string> order = {"S1", "S4", "S2", "S3"};  // least to most critical
  const auto cands = deepreduce_candidates("resnet18", order, in);
  const auto budgets = parse_budgets("230K,115K,57K,29K,15K,12K");
  const auto plans = plan_budgets(cands, budgets, 2);
  ASSERT_EQ(plans.size(), 6u);
  // The first picks are the DeepReDuce models of the paper's ResNet18 frontier.
  EXPECT_EQ(plans[0].picks[0].spec, "resnet18:cull=S1");
  EXPECT_EQ(plans[0].picks[0].relus, 229376);
  EXPECT_EQ(plans[1].picks[0].spec, "resnet18:cull=S1:thin=relu2");
  EXPECT_EQ(plans[1].picks[0].relus, 114688);
  EXPECT_EQ(plans[3].picks[0].spec, "resnet18:rho=0.5:cull=S1:thin=relu2");
  EXPECT_EQ(plans[4].picks[0].spec, "resnet18:alpha=0.5:rho=0.5:cull=S1:thin=relu2");
  for (const auto& p : plans) {
    ASSERT_FALSE(p.picks.empty());
    for (const auto& c : p.picks) {
      EXPECT_LE(c.relus, p.budget) << c.spec;
      // Static count of the spec as built: the plan's number is real.
      EXPECT_EQ(arch::build_network(c.spec, in).totals().relus, c.relus);
      // DeepReDuce order: the culled stages are the least critical ones...
      const auto spec = arch::parse_spec(c.spec);
      EXPECT_EQ(spec.cull.size(), static_cast<size_t>(c.culled));
      std::set<std::string> want(order.begin(), order.begin() + c.culled);
      EXPECT_EQ(std::set<std::string>(spec.cull.begin(), spec.cull.end()), want) << c.spec;
      // ...and reshaping comes only after thinning.
      if (spec.alpha != 1.0 || spec.rho != 1.0) {
        EXPECT_TRUE(spec.thin.has_value()) << c.spec;
      }
    }
  }
  // A budget below every candidate.
  EXPECT_THROW(plan_budgets(cands, {10}, 1), std::invalid_argument);
  try {
    plan_budgets(cands, {10}, 1);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("below every candidate"), std::string::npos);
  }
}

TEST(Plan, CandidatesFollowTheSteps) {
  const auto cands = deepreduce_candidates("resnet18", {"S1", "S4", "S2", "S3"}, arch::dataset_input("cifar10"));
  std::set<int> steps;
  for (const auto& c : cands) steps.insert(static_cast<int>(c.step));
  EXPECT_EQ(steps, (std::set<int>{1, 2, 3, 4, 5, 6}));
  for (size_t i = 1; i < cands.size(); ++i) EXPECT_GE(cands[i - 1].relus, cands[i].relus);
  EXPECT_THROW(deepreduce_candidates("resnet18:cull=S1", {"S1", "S2", "S3", "S4"}, arch::dataset_input("cifar10")),
               arch::SpecError);
  EXPECT_THROW(deepreduce_candidates("resnet18", {"S1", "S2"}, arch::dataset_input("cifar10")), std::invalid_argument);
  // VGG at rho 0.5 cannot carry 32x32 through five pools: those are left out.
  for (const auto& c : deepreduce_candidates("vgg16", {"S5", "S4", "S1", "S2", "S3"}, arch::dataset_input("cifar10")))
    EXPECT_EQ(c.spec.find("rho"), std::string::npos);
}

TEST(Plan, Budgets) {
  EXPECT_EQ(parse_budgets("50K,20k,1.5M,12000"), (std::vector<int64_t>{50000, 20000, 1500000, 12000}));
  for (const std::string bad : {"", "0", "-5K", "abc", "5X", "50K,", ",50K", "0K", "1e400"}) {
    EXPECT_THROW(parse_budgets(bad), std::invalid_argument) << bad;
  }
  try {
    parse_budgets("50K,-1");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'-1'"), std::string::npos);
  }
}

TEST(Plan, ShardsPartitionTheJobListExactly) {
  for (int n = 1; n <= 5; ++n) {
    std::vector<int> owner(23, -1);
    for (int i = 0; i < n; ++i) {
      const Shard s = parse_shard(std::to_string(i) + "/" + std::to_string(n));
      for (size_t j = 0; j < owner.size(); ++j)
        if (s.owns(j)) {
          EXPECT_EQ(owner[j], -1) << "job " << j << " in two shards";
          owner[j] = i;
        }
    }
    for (size_t j = 0; j < owner.size(); ++j) EXPECT_NE(owner[j], -1) << "job " << j << " in no shard";
  }
  for (const std::string bad : {"1/1", "-1/2", "2", "a/b", "0/0", "1/2/3", "0/2x"})
    EXPECT_THROW(parse_shard(bad), std::invalid_argument) << bad;
}

TEST(Pareto, NonDominatedPoints) {
  const std::vector<Point> p = {{100, 0.70}, {50, 0.72}, {200, 0.80}, {200, 0.75}, {30, 0.60}, {60, 0.71}};
  EXPECT_EQ(pareto_front(p), (std::vector<size_t>{4, 1, 2}));
}

TEST(Limits, HugeBudgetIsRefusedNamingItsText) {
  // Was: "budget -9223372036854775808 ReLUs is below every candidate" (llround beyond int64_t).
  auto message = [](const std::string& text) {
    try {
      parse_budgets(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << text << " was accepted";
    return std::string();
  };
  for (const std::string big : {"99999999999999999999999", "1e20", "1e400", "5000000000000000K", "9e12M"}) {
    const std::string m = message("50K," + big);
    EXPECT_NE(m.find("budget '" + big + "'"), std::string::npos) << m;
    EXPECT_NE(m.find("is too large (at most 4611686018427387904"), std::string::npos) << m;
  }
  for (const std::string odd : {"inf", "nan", "infK", "-inf", " 5K", "+5K", "1e-400"}) {
    const std::string m = message(odd);
    EXPECT_NE(m.find("is not a positive ReLU count"), std::string::npos) << odd << ": " << m;
  }
  // The limit itself is a budget.
  EXPECT_EQ(parse_budgets("4611686018427387904"), (std::vector<int64_t>{int64_t(1) << 62}));
}
