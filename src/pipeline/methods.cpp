// The registry of reduce's methods: one line per method, in the order
// reduce runs them and the report lists them.
#include <algorithm>

#include "pipeline/jobs.h"
#include "pipeline/method.h"
#include "pipeline/methods/methods.h"
#include "util/fs.h"

namespace dr::pipeline {

const std::vector<MethodEntry>& method_registry() {
  static const std::vector<MethodEntry> registry = {
      {"deepreduce", make_deepreduce, {"candidates"}, nullptr},
      {"snl", make_snl, {"snl/search"}, check_snl_settings},
      {"combined", make_combined, {"combined/search"}, nullptr},  // SNL's settings, checked by snl's line
      {"poly", make_poly, {"poly/search"}, nullptr},              // likewise
  };
  return registry;
}

std::vector<std::unique_ptr<Method>> make_methods(const std::vector<std::string>& names) {
  std::vector<std::unique_ptr<Method>> out;
  for (const MethodEntry& e : method_registry())
    if (std::find(names.begin(), names.end(), e.name) != names.end()) out.push_back(e.make());
  return out;
}

std::string candidate_dir(const std::string& out, const std::string& spec) {
  return util::path_join(util::path_join(out, "candidates"), run_name(spec));
}

}  // namespace dr::pipeline
