// The family registry: one line names every family file.
#include "arch/family.h"

#include "arch/spec.h"
#include "util/strings.h"

// THE registry line: each name N is a file src/arch/N.cpp defining
// std::vector<Family> N_families(). Families are listed in this order.
#define DR_FAMILY_FILES(X) X(resnet) X(vgg) X(mobilenetv1) X(mobilenetv2)

namespace dr::arch {

#define DR_DECLARE_FAMILY_FILE(name) std::vector<Family> name##_families();
DR_FAMILY_FILES(DR_DECLARE_FAMILY_FILE)
#undef DR_DECLARE_FAMILY_FILE

const std::vector<Family>& families() {
  static const std::vector<Family> all = [] {
    std::vector<Family> f;
#define DR_LIST_FAMILY_FILE(name) &name##_families,
    for (auto* entries : {DR_FAMILY_FILES(DR_LIST_FAMILY_FILE)})
#undef DR_LIST_FAMILY_FILE
      for (auto& e : (*entries)()) f.push_back(std::move(e));
    return f;
  }();
  return all;
}

std::vector<std::string> families_with_blocks() {
  std::vector<std::string> names;
  for (const auto& f : families())
    if (!f.default_blocks.empty()) names.push_back(f.name);
  return names;
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
