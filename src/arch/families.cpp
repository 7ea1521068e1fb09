// The family registry: one line per family file.
#include "arch/family.h"

#include "arch/spec.h"
#include "util/strings.h"

namespace dr::arch {

const std::vector<Family>& families() {
  static const std::vector<Family> all = [] {
    std::vector<Family> f;
    for (auto* entries : {&resnet_families, &vgg_families, &mobilenetv1_families, &mobilenetv2_families})
      for (auto& e : (*entries)()) f.push_back(std::move(e));
    return f;
  }();
  return all;
}

const Family& find_family(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& f : families()) {
    if (f.name == name) return f;
    names.push_back(f.name);
  }
  throw SpecError("unknown model family '" + name + "' (accepted: " + util::join(names) + ")");
}

std::vector<std::string> Family::policy_names() const {
  std::vector<std::string> names;
  for (const auto& p : thin_policies) names.push_back(p.name);
  return names;
}

const ThinPolicy* Family::policy(const std::string& name) const {
  for (const auto& p : thin_policies)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<std::string> stage_names(int n) {
  std::vector<std::string> s;
  for (int i = 1; i <= n; ++i) s.push_back("S" + std::to_string(i));
  return s;
}

}  // namespace dr::arch
