#pragma once
// The factories of reduce's methods, one per file of this folder; the
// registry (pipeline/methods.cpp) lists them.
#include <memory>

#include "pipeline/method.h"

namespace dr::pipeline {

std::unique_ptr<Method> make_deepreduce();  // deepreduce.cpp: cull, thin, reshape
std::unique_ptr<Method> make_snl();         // snl.cpp: pixel masks learned from the teacher
std::unique_ptr<Method> make_combined();    // snl.cpp: pixel masks learned from DeepReDuce's network
std::unique_ptr<Method> make_poly();        // poly.cpp: removed ReLUs become trained quadratics

// The SNL methods' settings (reduce's --snl-* options with its training
// settings and budget list), checked whatever the methods (validate_settings).
void check_snl_settings(const ReduceOptions& o);

}  // namespace dr::pipeline
