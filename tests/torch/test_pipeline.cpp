// The DeepReDuce pipeline through the CLI: the plan, bad budgets, reuse of
// finished runs after a kill, and shards that split the job list.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "test_paths.h"
#include "test_util.h"
#include "util/fs.h"

namespace fs = std::filesystem;
using dr::util::read_file;
namespace test = dr::test;

namespace {

// Runs the deepreduce CLI, stdout and stderr together.
test::CommandResult cli(const std::string& args) {
  return test::run_command(std::string(DEEPREDUCE_BINARY) + " " + args);
}

const std::string kSmall =
    "--model resnet10:alpha=0.25 --data synthetic:3x16x16:4:128 --epochs 1 --batch 32 --threads 1 --workers 0";

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(ReduceCli, DryRunPrintsThePlanAndTrainsNothing) {
  const test::ScratchDir scratch("dry");
  const std::string& d = scratch.path;
  // resnet18 at CIFAR-100's input (3x32x32, 100 classes) with the appendix's order.
  const auto r = cli("reduce --model resnet18 --data synthetic:3x32x32:100:200 --order S1,S4,S2,S3 "
                     "--budget 230K,115K,57K,29K,15K,12K --dry-run --out " + d + "/r");
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const char* s : {"resnet18:cull=S1 ", "229,376", "resnet18:cull=S1:thin=relu2", "114,688",
                        "resnet18:alpha=0.5:rho=0.5:cull=S1:thin=relu2", "14,336", "557,056"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  EXPECT_FALSE(fs::exists(d + "/r/teacher"));
}

TEST(ReduceCli, DryRunShowsOnlyTheStepsThatRun) {
  const test::ScratchDir scratch("dry-snl");
  const auto snl = cli("reduce " + kSmall + " --budget 1K --method snl --dry-run --out " + scratch.path + "/r");
  ASSERT_EQ(snl.rc, 0) << snl.out;
  EXPECT_FALSE(test::contains(snl.out, "criticality")) << snl.out;  // SNL needs no criticality order
  EXPECT_TRUE(test::contains(snl.out, "2. SNL from the teacher")) << snl.out;
  const auto all = cli("reduce " + kSmall + " --budget 1K --method all --dry-run --out " + scratch.path + "/r");
  ASSERT_EQ(all.rc, 0) << all.out;
  EXPECT_TRUE(test::contains(all.out, "2. criticality: 4 runs")) << all.out;
  EXPECT_FALSE(fs::exists(scratch.path + "/r"));
}

// A directory of someone else's files is refused before any work; the
// command's own earlier output is continued (KilledReduceContinues...).
TEST(ReduceCli, OutputDirectoriesOfOtherFilesAreRefused) {
  const test::ScratchDir scratch("foreign-out");
  const std::string d = scratch.path + "/mine";
  fs::create_directories(d);
  dr::util::write_file_atomic(d + "/report.md", "my own report\n");
  dr::util::write_file_atomic(d + "/results.json", "{}\n");
  dr::util::write_file_atomic(d + "/criticality.md", "my own table\n");
  const std::string cases[] = {
      "reduce " + kSmall + " --budget 1K --out " + d,
      "reduce " + kSmall + " --budget 1K --method snl --dry-run --out " + d,
      "criticality " + kSmall + " --teacher " + scratch.path + "/t --out " + d,
      "linearize --teacher " + scratch.path + "/t --data synthetic:3x16x16:4:128 --threads 1 --budget 1K --out " + d,
  };
  for (const auto& args : cases) {
    const auto r = cli(args);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.out;
    EXPECT_TRUE(test::contains(r.out, "is not empty and holds no `deepreduce")) << args << "\n" << r.out;
  }
  EXPECT_EQ(read_file(d + "/report.md"), "my own report\n");
  EXPECT_EQ(read_file(d + "/results.json"), "{}\n");
  EXPECT_EQ(read_file(d + "/criticality.md"), "my own table\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 3);
  // A file where the directory should be.
  const auto f = cli("reduce " + kSmall + " --budget 1K --out " + d + "/report.md");
  EXPECT_EQ(f.rc, 2) << f.out;
}

TEST(ReduceCli, BadBudgetsAreRefusedBeforeTraining) {
  const test::ScratchDir scratch("budget");
  const std::string& d = scratch.path;
  for (const std::string b : {"0", "-5K", "abc", "50K,,20K", "1"}) {
    const auto r = cli("reduce " + kSmall + " --budget " + b + " --out " + d + "/r");
    EXPECT_EQ(r.rc, 2) << b << "\n" << r.out;
    EXPECT_NE(r.out.find("budget"), std::string::npos) << b << "\n" << r.out;
    EXPECT_FALSE(fs::exists(d + "/r/teacher")) << b;
  }
  const auto r = cli("reduce " + kSmall + " --budget 1 --out " + d + "/r");
  EXPECT_NE(r.out.find("below every candidate"), std::string::npos) << r.out;
  // A family spec that already culls is refused too.
  const auto c = cli("reduce --model resnet10:cull=S1 --data synthetic:3x16x16:4:128 --budget 1K --out " + d + "/c");
  EXPECT_EQ(c.rc, 2) << c.out;
  EXPECT_NE(c.out.find("without cull"), std::string::npos) << c.out;
}

TEST(ReduceCli, KilledReduceContinuesAndReusesFinishedRuns) {
  const test::ScratchDir scratch("resume");
  const std::string& d = scratch.path;
  const std::string args = "reduce " + kSmall + " --budget 4K,1K --out " + d + "/r";
  auto r = cli(args);
  ASSERT_EQ(r.rc, 0) << r.out;
  for (const char* f : {"report.md", "frontier.png", "results.json", "plan.json", "criticality/criticality.json",
                        "criticality/criticality.md"})
    EXPECT_TRUE(fs::exists(d + "/r/" + f)) << f;
  const auto results = nlohmann::json::parse(read_file(d + "/r/results.json"));
  ASSERT_GE(results["steps"].size(), 2u);
  const std::string report = read_file(d + "/r/report.md");
  EXPECT_NE(report.find("## Stage criticality"), std::string::npos);
  EXPECT_NE(report.find("## Pareto frontier"), std::string::npos);

  // Simulate a kill during one candidate: its run loses result.json and weights.
  std::vector<std::string> cands;
  for (const auto& e : fs::directory_iterator(d + "/r/candidates")) cands.push_back(e.path().string());
  ASSERT_FALSE(cands.empty());
  fs::remove(cands[0] + "/result.json");
  fs::remove(cands[0] + "/weights.pt");
  const auto teacher_time = fs::last_write_time(d + "/r/teacher/weights.pt");
  r = cli(args);
  ASSERT_EQ(r.rc, 0) << r.out;
  // 1 teacher + 8 criticality + the other candidates are reused; the killed one resumes.
  EXPECT_EQ(count(r.out, "(finished, reused)"), 1 + 8 + cands.size() - 1) << r.out;
  EXPECT_TRUE(fs::exists(cands[0] + "/result.json"));
  EXPECT_EQ(fs::last_write_time(d + "/r/teacher/weights.pt"), teacher_time);
}

TEST(ReduceCli, ShardsSplitTheJobsExactly) {
  const test::ScratchDir scratch("shard");
  const std::string& d = scratch.path;
  // The order is given, so the jobs are: teacher, then the candidates.
  const std::string args = "reduce " + kSmall + " --order S1,S4,S2,S3 --budget 8K,4K,2K,1K --per-budget 1 --no-wait --out " + d + "/r";
  std::string log;
  // Shard 1 cannot start before the teacher (job 0, shard 0's) exists.
  auto r = cli(args + " --shard 1/2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("not finished yet"), std::string::npos) << r.out;
  log += r.out;
  r = cli(args + " --shard 0/2");
  ASSERT_EQ(r.rc, 0) << r.out;
  log += r.out;
  r = cli(args + " --shard 1/2");
  ASSERT_EQ(r.rc, 0) << r.out;
  log += r.out;
  EXPECT_NE(r.out.find("report:"), std::string::npos) << r.out;
  // Every run was trained exactly once across the shards.
  std::set<std::string> trained;
  std::regex started("\\[(teacher|candidates)\\] .* -> (\\S+)\n");
  for (std::sregex_iterator it(log.begin(), log.end(), started), end; it != end; ++it) {
    EXPECT_TRUE(trained.insert((*it)[2]).second) << "trained twice: " << (*it)[2];
  }
  const auto plan = nlohmann::json::parse(read_file(d + "/r/plan.json"));
  std::set<std::string> picks;
  for (const auto& b : plan["budgets"])
    for (const auto& p : b["picks"]) picks.insert(p.get<std::string>());
  EXPECT_EQ(trained.size(), picks.size() + 1);
  for (const auto& dir : trained) EXPECT_TRUE(fs::exists(dir + "/result.json")) << dir;
}

TEST(CriticalityCli, NeedsAFinishedTeacher) {
  const test::ScratchDir scratch("crit");
  const std::string& d = scratch.path;
  const auto r = cli("criticality " + kSmall + " --teacher " + d + "/none --out " + d + "/c");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("not a finished run"), std::string::npos) << r.out;
}

TEST(ReduceCli, ParallelJobsGiveTheSameResultsAsOneAtATime) {
  // --jobs 2 trains two networks at once as processes with a core each; with
  // one thread per training either way, every accuracy is the same.
  const test::ScratchDir scratch("jobs");
  const std::string& d = scratch.path;
  const std::string args = "reduce " + kSmall + " --order S1,S2,S3,S4 --budget 4K,1K";
  auto one = cli(args + " --jobs 1 --out " + d + "/one");
  ASSERT_EQ(one.rc, 0) << one.out;
  auto two = cli(args + " --jobs 2 --out " + d + "/two");
  ASSERT_EQ(two.rc, 0) << two.out;
  EXPECT_NE(two.out.find("started with --threads 1"), std::string::npos) << two.out;
  const auto a = nlohmann::json::parse(read_file(d + "/one/results.json"))["steps"];
  const auto b = nlohmann::json::parse(read_file(d + "/two/results.json"))["steps"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]["acc"], b[i]["acc"]) << a[i]["spec"];
  EXPECT_TRUE(fs::exists(d + "/two/teacher/train.log"));
  const auto bad = cli(args + " --jobs 0 --out " + d + "/bad");
  EXPECT_EQ(bad.rc, 2) << bad.out;
  EXPECT_NE(bad.out.find("--jobs"), std::string::npos) << bad.out;
  // Finished runs made with other settings are not reused as if they were new.
  const auto other = cli("reduce --model resnet10:alpha=0.25 --data synthetic:3x16x16:4:128 --epochs 2 --batch 32 "
                         "--threads 1 --workers 0 --order S1,S2,S3,S4 --budget 4K,1K --out " + d + "/one");
  EXPECT_EQ(other.rc, 2) << other.out;
  EXPECT_NE(other.out.find("made with other settings (epochs: 1 in"), std::string::npos) << other.out;
}
