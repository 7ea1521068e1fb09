#pragma once
// The factories of reduce's methods, one per file of this folder; the
// registry (pipeline/methods.cpp) lists them.
#include <memory>

#include "pipeline/linearize.h"
#include "pipeline/method.h"

namespace dr::pipeline {

std::unique_ptr<Method> make_deepreduce();  // deepreduce.cpp: cull, thin, reshape
std::unique_ptr<Method> make_snl();         // snl.cpp: pixel masks learned from the teacher
std::unique_ptr<Method> make_combined();    // snl.cpp: pixel masks learned from DeepReDuce's network

// The SNL methods' LinearizeOptions as far as they are known before the
// teacher exists (reduce's --snl-* options, its training settings), and
// their check with the budget list (validate_settings).
LinearizeOptions snl_options(const ReduceOptions& o);
void check_snl_settings(const ReduceOptions& o);

}  // namespace dr::pipeline
