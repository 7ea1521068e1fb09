#pragma once
// Provenance of a run or a benchmark (util/provenance.h) with what only the
// torch side knows: the LibTorch version, the device and the threads.
#include <nlohmann/json.hpp>
#include <string>

namespace dr::train {

// util::provenance() plus "libtorch", "device" (cpu or cuda, as `device`
// resolves here: cpu, cuda, auto) and "threads" (compute threads `threads`
// gives: 0 = every core).
nlohmann::json provenance(const std::string& device, int threads);

// One line for reports: "deepreduce 0.3.0 (commit 3f2a9c1b0d4e), LibTorch
// 1.13.0, cpu, 2 threads, Intel(R) Xeon(R) ..., 2 cores, host h, started
// 2026-...Z" (a run's result adds ", finished 2026-...Z [on host h2]").
// `deepreduce provenance` prints it for scripts (bench/*.sh).
std::string provenance_line(const nlohmann::json& p);

}  // namespace dr::train
