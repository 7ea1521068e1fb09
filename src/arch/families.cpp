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

// The families of the network files read so far, each with its network
// (families are referred to by reference for the life of the process).
struct FileFamily {
  Family family;
  Network net;
};
std::mutex file_families_mu;
std::map<std::string, std::unique_ptr<FileFamily>> file_families;

// The family of a network file, read once.
const Family& file_family(const std::string& path) {
  std::lock_guard<std::mutex> lock(file_families_mu);
  auto& f = file_families[path];
  if (f) return f->family;
  if (!file_reader)
    throw SpecError("model file '" + path + "': this program reads no network files (the deepreduce CLI does)");
  NetworkFile file = file_reader(path);
  auto ff = std::make_unique<FileFamily>();
  ff->family.name = path;
  ff->family.description = std::move(file.description);
  ff->family.stages = file.net.stages;
  ff->family.thin_policies = {{"relu2", {"relu2"}}, {"relu1", {"relu1"}}};
  ff->net = std::move(file.net);
  f = std::move(ff);
  return f->family;
}

}  // namespace

void set_network_file_reader(NetworkFileReader reader) { file_reader = reader; }

const Network* file_network(const Family& fam) {
  if (!is_network_file(fam.name)) return nullptr;
  std::lock_guard<std::mutex> lock(file_families_mu);
  auto it = file_families.find(fam.name);
  return it == file_families.end() ? nullptr : &it->second->net;
}

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
