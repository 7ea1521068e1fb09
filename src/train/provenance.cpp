#include "train/provenance.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <thread>

#include "train/config.h"
#include "util/provenance.h"

namespace dr::train {

nlohmann::json provenance(const std::string& device, int threads) {
  const bool cuda = device == "cuda" || (device == "auto" && torch::cuda::is_available());
  const int n = threads > 0 ? threads : max_threads();
  return util::provenance({{"libtorch", TORCH_VERSION},
                           {"device", cuda ? "cuda (" + std::to_string(torch::cuda::device_count()) + " devices)"
                                           : std::string("cpu")},
                           {"threads", n}});
}

std::string provenance_line(const nlohmann::json& p) {
  auto str = [&](const char* k) { return p.contains(k) && p[k].is_string() ? p[k].get<std::string>() : std::string(); };
  std::string s = "deepreduce " + str("deepreduce");
  if (!str("commit").empty()) s += " (commit " + str("commit") + (p.value("dirty", false) ? ", modified" : "") + ")";
  if (!str("libtorch").empty()) s += ", LibTorch " + str("libtorch");
  if (!str("device").empty()) s += ", " + str("device");
  if (p.contains("threads")) s += ", " + std::to_string(p["threads"].get<int>()) + " threads";
  if (!str("cpu").empty()) s += ", " + str("cpu");
  if (p.contains("cores") && p["cores"].is_number()) s += ", " + std::to_string(p["cores"].get<int>()) + " cores";
  if (!str("hostname").empty()) s += ", host " + str("hostname");
  if (!str("started").empty()) s += ", started " + str("started");
  // A run's result: where and when it finished (a resume may finish elsewhere).
  if (p.contains("finished") && p["finished"].is_object()) {
    const nlohmann::json& f = p["finished"];
    s += ", finished " + f.value("time", std::string("?"));
    const std::string host = f.value("hostname", std::string());
    if (!host.empty() && host != str("hostname")) s += " on host " + host;
  }
  return s;
}

}  // namespace dr::train
