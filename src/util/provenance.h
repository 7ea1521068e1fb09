#pragma once
// Where a result came from: every result.json, config.json, reduce report and
// benchmark output carries this record, so a table can be trusted months later.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dr::util {

struct BuildInfo {
  std::string version;  // deepreduce's version (CMakeLists.txt)
  std::string commit;   // git commit of the checkout it was built from ("" when not built from one)
  bool dirty = false;   // the checkout had uncommitted changes to tracked files
};
// Filled in at build time (cmake/build_info.cmake).
const BuildInfo& build_info();

// "0.3.0 (3f2a9c1b0d4e)", "0.3.0 (3f2a9c1b0d4e, modified)" or "0.3.0".
std::string version_string();

// The CPU model as /proc/cpuinfo names it ("" when unknown).
std::string cpu_model();
// Which of the instruction-set extensions that decide oneDNN's kernels
// (avx2, avx512f, avx512_bf16, amx_bf16, amx_fp16, avx512_fp16) the CPU has,
// in that order, as /proc/cpuinfo names them (empty when unknown). bf16
// training is fast only with avx512_bf16 or amx_bf16 (docs/performance.md).
std::vector<std::string> cpu_kernel_flags();

// {"deepreduce": version, "commit": ..., "dirty": ..., "cpu": ..., "cpu_flags": [...], "cores": N,
//  "hostname": ..., "started": ISO-8601 UTC now} plus every field of `extra`
// (the torch side adds "libtorch", "device", "threads").
nlohmann::json provenance(const nlohmann::json& extra = nlohmann::json::object());

// ISO-8601 UTC time of now, e.g. "2026-11-25T10:31:07Z".
std::string utc_now();

}  // namespace dr::util
