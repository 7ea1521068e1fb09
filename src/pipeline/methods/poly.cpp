// Polynomial replacement (AutoReP-style, Peng et al., ICCV 2023): the mask
// search of `linearize --replace poly` (train/search_sites.h) from the
// teacher to every budget, each removed ReLU becoming its channel's trained
// quadratic a*x^2 + b*x + c, each snapshot fine-tuned with KD.
#include <iostream>

#include "pipeline/methods/methods.h"
#include "pipeline/methods/snl_method.h"
#include "util/fs.h"

namespace dr::pipeline {

namespace {

class Poly final : public SnlMethod {
 public:
  std::string name() const override { return "poly"; }
  std::string title() const override { return "polynomial replacement"; }
  std::string starts_from_teacher() const override { return "--method poly starts from its weights"; }

  void plan(const ReduceOptions& o, const ReducePlan& p, bool) override { plan_budgets(o, p, p.base_spec, true); }
  void print_own(const ReduceOptions& o, const ReducePlan&, int& step) const override {
    std::cout << "  " << ++step
              << ". polynomial replacement (AutoReP-style) from the teacher to " << budget_list(budgets_)
              << ", each removed ReLU a trained per-channel quadratic -> "
              << util::path_join(o.out, "poly") << "\n";
  }
  bool run(const ReduceOptions& o, const ReducePlan& p, std::vector<FrontierPoint>& points) override {
    return run_from(o, p, "", points);
  }
  void add_report_notes(const ReduceOptions& o, std::string& notes) const override {
    add_notes(o, notes,
              " Polynomial replacement starts from the teacher; every ReLU its search removes becomes its "
              "channel's quadratic a*x^2 + b*x + c (fitted to the activations, then trained), which the ReLU "
              "counts leave out: its points' `poly elements` say how many ([its report](poly/report.md)).");
  }

 private:
  std::string replace() const override { return "poly"; }
};

}  // namespace

std::unique_ptr<Method> make_poly() { return std::make_unique<Poly>(); }

}  // namespace dr::pipeline
