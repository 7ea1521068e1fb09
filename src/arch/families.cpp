// The family registry: one line names every family file.
#include "arch/family.h"

#include <map>
#include <mutex>

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

namespace {

NetworkFileReader file_reader = nullptr;

// The family of a network file, read once (families are referred to by
// reference for the life of the process).
const Family& file_family(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Family>> read;
  std::lock_guard<std::mutex> lock(mu);
  auto& f = read[path];
  if (f) return *f;
  if (!file_reader)
    throw SpecError("model file '" + path + "': this program reads no network files (the deepreduce CLI does)");
  auto net = std::make_shared<const Network>(file_reader(path));
  auto fam = std::make_unique<Family>();
  fam->name = path;
  fam->description = "a network read from " + path;
  fam->stages = net->stages;
  fam->thin_policies = {{"relu2", {"relu2"}}, {"relu1", {"relu1"}}};
  fam->file = std::move(net);
  f = std::move(fam);
  return *f;
}

}  // namespace

void set_network_file_reader(NetworkFileReader reader) { file_reader = reader; }

bool is_network_file(const std::string& name) {
  const std::string suffix = ".onnx";
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const Family& find_family(const std::string& name) {
  if (is_network_file(name)) return file_family(name);
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
