#pragma once
// A network description as JSON: what `deepreduce count --format json` prints
// and what python/deepreduce_model.py and bench/ rebuild networks from.
#include <nlohmann/json.hpp>

#include "arch/network.h"

namespace dr::arch {

// {"spec", "family", "input", "classes", "relus", "flops", "params",
//  "stages": [{"name", "relus", "flops", "params"}...]} and, with_layers,
// "layers": every layer with its block, its part of the block (body,
// shortcut, post), shapes and geometry: enough to rebuild the network.
nlohmann::json network_json(const Network& net, bool with_layers);

}  // namespace dr::arch
