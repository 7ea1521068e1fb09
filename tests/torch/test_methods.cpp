// The methods of reduce as units (src/pipeline/method.h), directly: the
// registry, each method's plan for a budget list, its budget checks, the
// DeepReDuce networks it asks for and its lines of the dry-run plan. No
// training: the end-to-end runs are in test_pipeline.cpp and test_linearize.cpp.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "arch/spec.h"
#include "pipeline/method.h"
#include "pipeline/reduce.h"
#include "planner/candidates.h"
#include "test_util.h"

namespace dr::pipeline {
namespace {

std::vector<std::string> names(const std::vector<std::unique_ptr<Method>>& methods) {
  std::vector<std::string> out;
  for (const auto& m : methods) out.push_back(m->name());
  return out;
}

// resnet6 at 1x12x12 with 4 classes and the order S1 < S2 < S3 < S4.
ReducePlan small_plan() {
  ReducePlan p;
  p.base_spec = "resnet6:alpha=0.125";
  p.input = arch::InputSpec{{1, 12, 12}, 4};
  p.base_relus = arch::build_network(p.base_spec, p.input).totals().relus;
  p.stages = p.order = {"S1", "S2", "S3", "S4"};
  p.teacher_dir = "/out/teacher";
  p.candidates = planner::deepreduce_candidates(p.base_spec, p.order, p.input);
  return p;
}

ReduceOptions options(std::vector<int64_t> budgets) {
  ReduceOptions o;
  o.out = "/out";
  o.budgets = std::move(budgets);
  return o;
}

// What a call prints on stdout.
template <class F>
std::string printed(F&& f) {
  std::ostringstream text;
  auto* old = std::cout.rdbuf(text.rdbuf());
  f();
  std::cout.rdbuf(old);
  return text.str();
}

TEST(Methods, RegistryListsEveryMethodInRunOrder) {
  std::vector<std::string> registered;
  for (const MethodEntry& e : method_registry()) registered.push_back(e.name);
  EXPECT_EQ(registered, (std::vector<std::string>{"deepreduce", "snl", "combined", "poly"}));
  EXPECT_EQ(parse_methods("all"), registered);
  // Made in registry order whatever the order typed, and only those named.
  EXPECT_EQ(names(make_methods({"combined", "deepreduce"})), (std::vector<std::string>{"deepreduce", "combined"}));
  EXPECT_EQ(names(make_methods(parse_methods("snl"))), (std::vector<std::string>{"snl"}));
  for (const MethodEntry& e : method_registry()) {
    EXPECT_FALSE(e.outputs.empty()) << e.name;
    EXPECT_EQ(e.make()->name(), e.name);
  }
}

TEST(Methods, DeepReduceAsksForItsPicksAndLabelsThem) {
  const ReducePlan p = small_plan();
  const ReduceOptions o = options({1000, 500});
  auto methods = make_methods({"deepreduce"});
  Method& m = *methods[0];
  EXPECT_TRUE(m.uses_criticality());
  EXPECT_TRUE(m.labelled_points());
  EXPECT_EQ(m.starts_from_teacher(), "");  // only teaches
  m.plan(o, p, false);
  const auto picks = m.candidates();
  ASSERT_FALSE(picks.empty());
  for (const auto& c : picks) EXPECT_LE(c.relus, 1000) << c.spec;
  nlohmann::json j = {{"budgets", nlohmann::json::array()}};
  m.add_plan_json(j);
  ASSERT_EQ(j["budgets"].size(), 2u);
  EXPECT_EQ(j["budgets"][0]["budget"], 1000);
  int step = 2;
  const std::string lines = printed([&] { EXPECT_TRUE(m.print_candidates(o, p, step, false)); });
  EXPECT_TRUE(test::contains(lines, "3. DeepReDuce candidates per budget")) << lines;
  EXPECT_TRUE(test::contains(lines, picks.front().spec)) << lines;
  EXPECT_TRUE(m.trained_deepreduce_networks());
  // A budget below every candidate is refused naming the smallest.
  EXPECT_NE(test::message_of<std::invalid_argument>([&] { m.plan(options({1}), p, false); }), "<no exception>");
}

TEST(Methods, SnlChecksItsBudgetsAgainstTheTeacher) {
  const ReducePlan p = small_plan();
  auto methods = make_methods({"snl"});
  Method& m = *methods[0];
  EXPECT_FALSE(m.uses_criticality());
  EXPECT_TRUE(m.candidates().empty());
  EXPECT_FALSE(m.trained_deepreduce_networks());
  EXPECT_TRUE(test::contains(m.starts_from_teacher(), "--method snl"));
  const std::string e = test::message_of<std::invalid_argument>([&] { m.plan(options({500, p.base_relus}), p, false); });
  EXPECT_TRUE(test::contains(e, "is not below the teacher's " + std::to_string(p.base_relus) + " ReLUs (method snl)"))
      << e;
  m.plan(options({500}), p, false);
  int step = 1;
  EXPECT_EQ(printed([&] { m.print_own(options({500}), p, step); }),
            "  2. SNL from the teacher to 500 live ReLUs -> /out/snl\n");
  std::string notes;
  m.add_report_notes(options({500}), notes);
  EXPECT_TRUE(test::contains(notes, "Mask-search points: a mask search")) << notes;
  nlohmann::json results = nlohmann::json::object();
  m.add_results(options({500}), results);
  EXPECT_EQ(results["snl"]["results"], nlohmann::json({"snl/results.json"}));
  EXPECT_EQ(results["snl"]["combined_start"], "");
}

TEST(Methods, CombinedStartsFromTheCullOneNetwork) {
  const ReducePlan p = small_plan();
  auto methods = make_methods({"snl", "combined"});
  Method& snl = *methods[0];
  Method& combined = *methods[1];
  const ReduceOptions o = options({1000, 500});
  combined.plan(o, p, false);
  ASSERT_EQ(combined.candidates().size(), 1u);
  const planner::Candidate start = combined.candidates()[0];
  EXPECT_EQ(start.spec, "resnet6:alpha=0.125:cull=S1");
  EXPECT_TRUE(combined.uses_criticality());
  // Its network is listed once: by itself when no method listed the candidates.
  int step = 2;
  EXPECT_TRUE(test::contains(printed([&] { EXPECT_TRUE(combined.print_candidates(o, p, step, false)); }),
                             "3. DeepReDuce's " + start.step_name + " network trained with KD"));
  EXPECT_EQ(printed([&] { EXPECT_TRUE(combined.print_candidates(o, p, step, true)); }), "");
  // No budget below its start: refused naming it.
  const std::string e = test::message_of<std::invalid_argument>([&] { combined.plan(options({start.relus + 1}), p, false); });
  EXPECT_TRUE(test::contains(e, "where the combined method starts")) << e;
  // One SNL paragraph and one results.json section for both SNL methods.
  snl.plan(o, p, false);
  std::string notes;
  snl.add_report_notes(o, notes);
  combined.add_report_notes(o, notes);
  EXPECT_EQ(notes.find("Mask-search points:"), notes.rfind("Mask-search points:")) << notes;
  EXPECT_TRUE(test::contains(notes, "DeepReDuce + SNL starts from DeepReDuce's `" + start.spec + "`")) << notes;
  nlohmann::json results = nlohmann::json::object();
  snl.add_results(o, results);
  combined.add_results(o, results);
  EXPECT_EQ(results["snl"]["results"], nlohmann::json({"snl/results.json", "combined/results.json"}));
  EXPECT_EQ(results["snl"]["combined_start"], start.spec);
}

// Polynomial replacement: SNL's search with another replacement, its own
// folder, its paragraph (the polynomial elements the counts leave out), and
// its results beside the other mask-search methods'.
TEST(Methods, PolyReplacesTheRemovedReluByQuadratics) {
  const ReducePlan p = small_plan();
  auto methods = make_methods({"poly", "snl"});
  ASSERT_EQ(names(methods), (std::vector<std::string>{"snl", "poly"}));
  Method& m = *methods[1];
  EXPECT_FALSE(m.uses_criticality());
  EXPECT_TRUE(test::contains(m.starts_from_teacher(), "--method poly"));
  const std::string e = test::message_of<std::invalid_argument>([&] { m.plan(options({p.base_relus}), p, false); });
  EXPECT_TRUE(test::contains(e, "(method poly)")) << e;
  m.plan(options({500}), p, false);
  int step = 1;
  EXPECT_TRUE(test::contains(printed([&] { m.print_own(options({500}), p, step); }), "-> /out/poly"));
  std::string notes;
  methods[0]->add_report_notes(options({500}), notes);
  m.add_report_notes(options({500}), notes);
  EXPECT_EQ(notes.find("Mask-search points:"), notes.rfind("Mask-search points:")) << "one shared paragraph";
  EXPECT_TRUE(test::contains(notes, "quadratic a*x^2 + b*x + c")) << notes;
  nlohmann::json results = nlohmann::json::object();
  methods[0]->add_results(options({500}), results);
  m.add_results(options({500}), results);
  EXPECT_EQ(results["snl"]["results"], nlohmann::json({"snl/results.json", "poly/results.json"}));
  EXPECT_FALSE(results["snl"]["search"].contains("replace"));  // per method: each results.json says
}

}  // namespace
}  // namespace dr::pipeline
