#pragma once
// Linear kernels: convolution (stride, padding, groups) and FC, generic over
// the element type. uint64_t is the private runtime's ring Z_2^64 (unsigned
// arithmetic wraps, which is exactly the ring's); double serves the float
// references and __int128 the overflow-checking fixed-point reference.
//
// Layouts: weights [cout][cin/groups][k][k] (an FC: [cout][cin]), input
// [cin][h][w], output [cout][oh][ow], all CHW without a batch dimension.
#include <cstdint>
#include <functional>

#include "mpc/program.h"

namespace dr::mpc {

// out = w (*) x. `threads` > 1 splits the output channels over that many
// threads (the result does not depend on it).
template <class T>
void linear_forward(const ConvGeom& g, const T* w, const T* x, T* out, int threads = 1);

// out[c][i] += b[c] for every position i of output channel c.
template <class T>
void add_channel_bias(const ConvGeom& g, const T* b, T* out);

extern template void linear_forward<uint64_t>(const ConvGeom&, const uint64_t*, const uint64_t*, uint64_t*, int);
extern template void linear_forward<double>(const ConvGeom&, const double*, const double*, double*, int);
extern template void linear_forward<__int128>(const ConvGeom&, const __int128*, const __int128*, __int128*, int);
extern template void add_channel_bias<uint64_t>(const ConvGeom&, const uint64_t*, uint64_t*);
extern template void add_channel_bias<double>(const ConvGeom&, const double*, double*);
extern template void add_channel_bias<__int128>(const ConvGeom&, const __int128*, __int128*);

// Runs fn(begin, end) over [0, n) split into `threads` contiguous chunks (the
// calling thread takes the first); threads <= 1 runs fn(0, n) in place.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace dr::mpc
