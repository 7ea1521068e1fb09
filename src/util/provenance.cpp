#include "util/provenance.h"

#include <unistd.h>

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
                      {"cores", std::thread::hardware_concurrency()},
                      {"hostname", std::string(host)},
                      {"started", utc_now()}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

}  // namespace dr::util
