#include "planner/candidates.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <stdexcept>

#include "arch/network.h"
#include "util/strings.h"

namespace dr::planner {

using util::join;

std::vector<Candidate> deepreduce_candidates(const std::string& base_text,
                                             const std::vector<std::string>& order,
                                             const arch::InputSpec& input) {
  const arch::ModelSpec base = arch::parse_family_spec(base_text, "model");
  const auto& fam = arch::find_family(base.family);
  if (std::set<std::string>(order.begin(), order.end()) != std::set<std::string>(fam.stages.begin(), fam.stages.end()) ||
      order.size() != fam.stages.size())
    throw std::invalid_argument("criticality order '" + join(order, ",") + "' must name each stage of " +
                                base.family + " once (" + join(fam.stages, ",") + ")");
  const std::vector<int>& blocks = base.blocks.empty() ? fam.default_blocks : base.blocks;
  const bool can_shrink_blocks =
      !blocks.empty() && std::any_of(blocks.begin(), blocks.end(), [](int b) { return b > 1; });

  std::vector<Candidate> out;
  for (size_t m = 1; m < order.size(); ++m) {
    arch::ModelSpec s = base;
    s.cull.assign(order.begin(), order.begin() + m);
    std::sort(s.cull.begin(), s.cull.end(), [&](const std::string& a, const std::string& b) {
      return std::find(fam.stages.begin(), fam.stages.end(), a) < std::find(fam.stages.begin(), fam.stages.end(), b);
    });
    const std::string culled = "cull " + join(s.cull, ",");
    auto add = [&](Step step, const std::string& name, const arch::ModelSpec& spec) {
      try {
        const auto net = arch::build_network(spec, input);
        out.push_back({step, name, spec.canonical(), net.totals().relus, static_cast<int>(m)});
      } catch (const arch::SpecError&) {
        // e.g. rho too small for this input: not a candidate here
      }
    };
    add(Step::Cull, culled, s);
    // Nothing to thin in resnet6: its culled network is reshaped directly.
    if (!fam.thin_policies.empty()) s.thin = fam.thin_policies.front().name;
    const std::string thinned = culled + (s.thin ? " + thin" : "");
    if (s.thin) add(Step::Thin, thinned, s);
    arch::ModelSpec a = s, r = s, ar = s;
    a.alpha = base.alpha * 0.5;
    r.rho = base.rho * 0.5;
    ar.alpha = a.alpha;
    ar.rho = r.rho;
    add(Step::HalfAlpha, thinned + " + alpha x0.5", a);
    add(Step::HalfRho, thinned + " + rho x0.5", r);
    add(Step::HalfAlphaAndRho, thinned + " + alpha x0.5 + rho x0.5", ar);
    if (can_shrink_blocks) {
      arch::ModelSpec b = ar;
      b.blocks.assign(blocks.size(), 1);
      add(Step::OneBlockPerStage, thinned + " + alpha x0.5 + rho x0.5 + one block per stage", b);
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Candidate& x, const Candidate& y) {
    return x.relus != y.relus ? x.relus > y.relus : x.step < y.step;
  });
  // The same network can arise twice (e.g. thinning removes nothing): keep the first.
  std::vector<Candidate> unique;
  std::set<std::string> seen;
  for (const auto& c : out)
    if (seen.insert(c.spec).second) unique.push_back(c);
  return unique;
}

std::vector<BudgetPlan> plan_budgets(const std::vector<Candidate>& candidates,
                                     const std::vector<int64_t>& budgets, int per_budget) {
  if (candidates.empty()) throw std::invalid_argument("no candidate networks to plan with");
  if (per_budget < 1) throw std::invalid_argument("--per-budget must be >= 1");
  const Candidate* smallest = &candidates.front();
  for (const auto& c : candidates)
    if (c.relus < smallest->relus) smallest = &c;
  std::vector<BudgetPlan> plans;
  for (int64_t b : budgets) {
    BudgetPlan p{static_cast<double>(b), std::to_string(b), {}};
    // candidates are sorted by ReLUs (most first), then by step
    for (const auto& c : candidates)
      if (c.relus <= b && static_cast<int>(p.picks.size()) < per_budget) p.picks.push_back(c);
    if (p.picks.empty())
      throw std::invalid_argument("budget " + std::to_string(b) + " ReLUs is below every candidate; the smallest is " +
                                  smallest->spec + " with " + std::to_string(smallest->relus) + " ReLUs");
    plans.push_back(p);
  }
  return plans;
}

std::vector<BudgetPlan> plan_budgets(const std::vector<Candidate>& candidates,
                                     const std::vector<MeasuredBudget>& budgets, int per_budget,
                                     const std::function<double(const Candidate&)>& measure,
                                     const std::function<std::string(double)>& show) {
  if (candidates.empty()) throw std::invalid_argument("no candidate networks to plan with");
  if (per_budget < 1) throw std::invalid_argument("--per-budget must be >= 1");
  std::vector<std::pair<double, const Candidate*>> by_cost;  // costliest first; candidates come by ReLUs, then step
  for (const auto& c : candidates) by_cost.push_back({measure(c), &c});
  std::stable_sort(by_cost.begin(), by_cost.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  std::vector<BudgetPlan> plans;
  for (const MeasuredBudget& b : budgets) {
    BudgetPlan p{b.value, b.text, {}};
    for (const auto& [cost, c] : by_cost)
      if (cost <= b.value && static_cast<int>(p.picks.size()) < per_budget) p.picks.push_back(*c);
    if (p.picks.empty())
      throw std::invalid_argument("budget " + b.text + " is below every candidate; the cheapest is " +
                                  by_cost.back().second->spec + " at " + show(by_cost.back().first));
    plans.push_back(p);
  }
  return plans;
}

namespace {

// The ReLU count a budget's number gives, in exact decimal arithmetic (a
// double rounds 4611686018427387905 to 2^62): `num` is digits with an
// optional fraction and exponent ("1.5", "12e3"), scaled by 10^shift (the
// K or M suffix), rounded half up. nullopt when `num` is not such a number;
// 0 when it is below 1 (refused as not positive); kMaxCount + 1 when above
// the limit.
std::optional<int64_t> exact_count(const std::string& num, int shift) {
  constexpr int64_t kTooLarge = arch::limits::kMaxCount + 1;
  std::string digits;  // the mantissa's digits, without the point
  size_t i = 0, point = std::string::npos;
  for (; i < num.size(); ++i) {
    if (num[i] == '.' && point == std::string::npos)
      point = digits.size();
    else if (std::isdigit(static_cast<unsigned char>(num[i])))
      digits += num[i];
    else
      break;
  }
  if (digits.empty() || (!std::isdigit(static_cast<unsigned char>(num[0])) && num[0] != '.')) return std::nullopt;
  int64_t whole = static_cast<int64_t>(point == std::string::npos ? digits.size() : point) + shift;
  if (i < num.size() && (num[i] == 'e' || num[i] == 'E')) {
    const bool negative = ++i < num.size() && num[i] == '-';
    if (i < num.size() && (num[i] == '-' || num[i] == '+')) ++i;
    int64_t e = 0;
    const size_t first = i;
    for (; i < num.size() && std::isdigit(static_cast<unsigned char>(num[i])); ++i)
      e = std::min<int64_t>(e * 10 + (num[i] - '0'), 100000);  // beyond any count either way
    if (i == first) return std::nullopt;
    whole += negative ? -e : e;
  }
  if (i != num.size()) return std::nullopt;
  const size_t first_digit = std::min(digits.find_first_not_of('0'), digits.size());
  if (first_digit == digits.size()) return 0;
  if (whole - static_cast<int64_t>(first_digit) > 19) return kTooLarge;  // 20 digits and more
  int64_t v = 0;
  for (int64_t k = 0; k < whole; ++k) {
    if (v > arch::limits::kMaxCount / 10) return kTooLarge;
    v = v * 10 + (k < static_cast<int64_t>(digits.size()) ? digits[static_cast<size_t>(k)] - '0' : 0);
  }
  if (v > arch::limits::kMaxCount) return kTooLarge;
  if (v == 0) return 0;
  if (whole >= 0 && whole < static_cast<int64_t>(digits.size()) && digits[static_cast<size_t>(whole)] >= '5') ++v;
  return std::min(v, kTooLarge);
}

}  // namespace

std::vector<int64_t> parse_budgets(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::string where = "budget '" + item + "'" + (item == text ? "" : " in '" + text + "'");
    const std::string bad = where + " is not a positive ReLU count (e.g. 50K, 1.5M, 12000; K = 1,000, M = 1,000,000)";
    if (item.empty()) throw std::invalid_argument(bad);
    int shift = 0;
    std::string num = item;
    const char last = static_cast<char>(std::toupper(static_cast<unsigned char>(item.back())));
    if (last == 'K' || last == 'M') {
      shift = last == 'K' ? 3 : 6;
      num = item.substr(0, item.size() - 1);
    }
    // A plain non-negative number: digits first (no sign, space, "inf" or "nan").
    const std::optional<int64_t> relus = exact_count(num, shift);
    if (!relus || *relus < 1) throw std::invalid_argument(bad);
    if (*relus > arch::limits::kMaxCount)
      throw std::invalid_argument(where + " is too large (at most " + std::to_string(arch::limits::kMaxCount) +
                                  " ReLUs, the limit of a network description's counts)");
    out.push_back(*relus);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Shard parse_shard(const std::string& text) {
  const std::string bad = "shard '" + text + "' is not i/N with 0 <= i < N (e.g. 0/4)";
  const size_t slash = text.find('/');
  if (slash == std::string::npos) throw std::invalid_argument(bad);
  Shard s;
  try {
    size_t u1 = 0, u2 = 0;
    const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
    s.index = std::stoi(a, &u1);
    s.count = std::stoi(b, &u2);
    if (u1 != a.size() || u2 != b.size()) throw std::invalid_argument(bad);
  } catch (const std::exception&) {
    throw std::invalid_argument(bad);
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count) throw std::invalid_argument(bad);
  return s;
}

}  // namespace dr::planner
