#include "mpc/linear.h"

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

namespace dr::mpc {

void parallel_for(int64_t n, int threads, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, n));
  if (t <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(t));
  auto chunk = [&](int64_t i) {
    try {
      fn(n * i / t, n * (i + 1) / t);
    } catch (...) {
      errors[static_cast<size_t>(i)] = std::current_exception();
    }
  };
  for (int64_t i = 1; i < t; ++i) pool.emplace_back(chunk, i);
  chunk(0);
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

namespace {

// Unfolds the input into columns: row (c, ky, kx), column p = (oy, ox). The
// rows of one group are contiguous, so a group's GEMM reads one block.
template <class T>
void im2col(const ConvGeom& g, const T* x, T* col) {
  const int64_t P = g.oh * g.ow;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t ky = 0; ky < g.k; ++ky)
      for (int64_t kx = 0; kx < g.k; ++kx) {
        T* row = col + ((c * g.k + ky) * g.k + kx) * P;
        for (int64_t oy = 0; oy < g.oh; ++oy) {
          const int64_t iy = oy * g.stride - g.pad + ky;
          T* dst = row + oy * g.ow;
          if (iy < 0 || iy >= g.h) {
            std::fill(dst, dst + g.ow, T(0));
            continue;
          }
          const T* src = x + (c * g.h + iy) * g.w;
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            dst[ox] = (ix >= 0 && ix < g.w) ? src[ix] : T(0);
          }
        }
      }
}

// out rows [o0, o1): out[o][p] = sum_q w[o][q] * col_g(o)[q][p]. Columns are
// tiled so a tile of `col` stays in cache across output channels, and the
// innermost loop runs over contiguous columns (it vectorises).
template <class T>
void gemm_rows(const ConvGeom& g, const T* w, const T* col, T* out, int64_t o0, int64_t o1) {
  const int64_t P = g.oh * g.ow, Q = (g.cin / g.groups) * g.k * g.k, cout_g = g.cout / g.groups;
  constexpr int64_t kMaxTile = 512;
  const int64_t tile = std::clamp<int64_t>(32768 / std::max<int64_t>(Q, 1), 16, kMaxTile);
  T acc[kMaxTile];
  for (int64_t p0 = 0; p0 < P; p0 += tile) {
    const int64_t n = std::min(tile, P - p0);
    for (int64_t o = o0; o < o1; ++o) {
      const T* wr = w + o * Q;
      const T* cg = col + (o / cout_g) * Q * P + p0;
      std::fill(acc, acc + n, T(0));
      for (int64_t q = 0; q < Q; ++q) {
        const T wv = wr[q];
        const T* c = cg + q * P;
        for (int64_t j = 0; j < n; ++j) acc[j] += wv * c[j];
      }
      std::copy(acc, acc + n, out + o * P + p0);
    }
  }
}

// An FC (or any 1x1 output): one dot product per output.
template <class T>
void dot_rows(const ConvGeom& g, const T* w, const T* x, T* out, int64_t o0, int64_t o1) {
  const int64_t Q = g.cin;
  for (int64_t o = o0; o < o1; ++o) {
    const T* wr = w + o * Q;
    T s = 0;
    for (int64_t q = 0; q < Q; ++q) s += wr[q] * x[q];
    out[o] = s;
  }
}

}  // namespace

template <class T>
void linear_forward(const ConvGeom& g, const T* w, const T* x, T* out, int threads) {
  if (g.fc || (g.groups == 1 && g.k == 1 && g.h == 1 && g.w == 1 && g.oh == 1 && g.ow == 1 && g.pad == 0)) {
    parallel_for(g.cout, threads, [&](int64_t a, int64_t b) { dot_rows(g, w, x, out, a, b); });
    return;
  }
  const bool direct = g.k == 1 && g.stride == 1 && g.pad == 0 && g.oh == g.h && g.ow == g.w;
  std::vector<T> buffer;
  const T* col = x;
  if (!direct) {
    buffer.resize(static_cast<size_t>(g.cin * g.k * g.k * g.oh * g.ow));
    im2col(g, x, buffer.data());
    col = buffer.data();
  }
  parallel_for(g.cout, threads, [&](int64_t a, int64_t b) { gemm_rows(g, w, col, out, a, b); });
}

template <class T>
void add_channel_bias(const ConvGeom& g, const T* b, T* out) {
  const int64_t P = g.oh * g.ow;
  for (int64_t c = 0; c < g.cout; ++c)
    for (int64_t i = 0; i < P; ++i) out[c * P + i] += b[c];
}

template void linear_forward<uint64_t>(const ConvGeom&, const uint64_t*, const uint64_t*, uint64_t*, int);
template void linear_forward<double>(const ConvGeom&, const double*, const double*, double*, int);
template void linear_forward<__int128>(const ConvGeom&, const __int128*, const __int128*, __int128*, int);
template void add_channel_bias<uint64_t>(const ConvGeom&, const uint64_t*, uint64_t*);
template void add_channel_bias<double>(const ConvGeom&, const double*, double*);
template void add_channel_bias<__int128>(const ConvGeom&, const __int128*, __int128*);

}  // namespace dr::mpc
