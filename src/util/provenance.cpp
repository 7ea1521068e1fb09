#include "util/provenance.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <thread>

#include "util/strings.h"

namespace dr::util {

std::string version_string() {
  const BuildInfo& b = build_info();
  if (b.commit.empty()) return b.version;
  return b.version + " (" + b.commit + (b.dirty ? ", modified" : "") + ")";
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return trim(line.substr(colon + 1));
    }
  return "";
}

std::vector<std::string> cpu_kernel_flags() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    const std::vector<std::string> has = split(line.substr(line.find(':') + 1), ' ');
    std::vector<std::string> out;
    for (const char* f : {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_fp16", "avx512_fp16"})
      if (std::find(has.begin(), has.end(), f) != has.end()) out.push_back(f);
    return out;
  }
  return {};
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json provenance(const nlohmann::json& extra) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const BuildInfo& b = build_info();
  nlohmann::json j = {{"deepreduce", b.version},
                      {"commit", b.commit.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.commit)},
                      {"dirty", b.dirty},
                      {"cpu", cpu_model()},
                      {"cpu_flags", cpu_kernel_flags()},
                      {"cores", std::thread::hardware_concurrency()},
                      {"hostname", std::string(host)},
                      {"started", utc_now()}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

}  // namespace dr::util
