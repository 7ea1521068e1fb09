#pragma once
// The server's model: float parameters by state_dict name, BatchNorm folded
// into the convolutions in double precision, then quantised to fixed point.
//
//   fold:      w' = w * g / sqrt(var + eps),  b' = (b - mean) * g / sqrt(var + eps) + beta
//   pool:      the FC after a global average pool gets w' = w / (H*W)
//   quantise:  W = llround(w' * 2^f), B = llround(b' * 2^(2f))  (B is added before truncation)
//   gates:     a gate step's own parameters (the polynomial gate's "<site>.poly")
//              as its gate quantises them (gates/poly.h: a at f, b at 2f, c at 3f)
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "arch/network.h"
#include "mpc/architecture.h"
#include "mpc/program.h"

namespace dr::mpc {

constexpr double kBatchNormEps = 1e-5;

// Parameters by state_dict name ("layer1.0.conv1.weight", "layer1.0.bn1.running_var",
// "head.fc.bias", ...; conv weights [out, in/groups, k, k], FC weights [out, in]),
// row-major, plus the input normalisation (one mean and std per input
// channel; empty = none). BatchNorm buffers other than running_mean/var
// (num_batches_tracked) are not needed.
struct FloatModel {
  std::map<std::string, std::vector<double>> params;
  std::vector<double> mean, std;
};

// One linear step with its BatchNorm and pool scale folded in, in double.
struct FoldedLinear {
  std::vector<double> w;  // [cout][cin/groups][k][k]
  std::vector<double> b;  // [cout] (zeros when the layer has neither bias nor BatchNorm)
};

// Indexed by the program's linear_index. Throws std::runtime_error naming a
// missing parameter or one of the wrong size.
std::vector<FoldedLinear> fold_model(const Program& program, const FloatModel& model);

struct QuantLinear {
  std::vector<int64_t> w;  // llround(w' * 2^f)
  std::vector<int64_t> b;  // llround(b' * 2^(2f))
};
// The parameters each gate step reads (Step::param, Gate::param_count values),
// by gate_index; empty for a gate without any (the ReLU gate). Throws
// std::runtime_error naming a missing parameter or one of the wrong size.
std::vector<std::vector<double>> gate_params(const Program& program, const FloatModel& model);

struct QuantModel {
  int frac_bits = kDefaultFracBits;
  std::vector<QuantLinear> layers;        // by linear_index
  std::vector<std::vector<int64_t>> gates;  // by gate_index: Gate::quantise of gate_params
};
// Throws std::invalid_argument for f outside 1..16 and std::runtime_error for
// a weight too large for the ring (|w * 2^f| or |b * 2^2f| >= 2^62) or a gate
// parameter its gate refuses (naming the site).
QuantModel quantise(const Program& program, const FloatModel& model, int frac_bits);

// Checks that every parameter the network needs is present with its size
// (throws std::runtime_error naming the first one that is not): a site with
// polynomial elements needs "<site>.poly" with 3 x C values.
void check_model(const arch::Network& net, const FloatModel& model);

// The parameter `name`, which must have `numel` elements; `what` names the
// layer that needs it in the error message.
const std::vector<double>& model_param(const FloatModel& model, const std::string& name, int64_t numel,
                                       const std::string& what);

// Random parameters for tests and smoke runs: He-scaled conv/FC weights,
// BatchNorm with random affine and running statistics, a site's polynomial
// coefficients near the least-squares fit of relu on N(0, 1) (a in
// [0.15, 0.25], b in [0.4, 0.6], c in [0.15, 0.25] per channel), mean
// 0.5 / std 0.25 normalisation. Deterministic in `seed`; a network without
// polynomial elements gets the same parameters as before they existed.
FloatModel random_float_model(const arch::Network& net, uint64_t seed);

// (pixel - mean[c]) / std[c] for a CHW image of `shape`. Throws
// std::invalid_argument when the sizes do not match.
std::vector<double> normalise(const arch::Shape& shape, const FloatModel& model, const std::vector<float>& pixels);
std::vector<double> normalise(const arch::Shape& shape, const std::vector<double>& mean,
                              const std::vector<double>& std, const std::vector<float>& pixels);

}  // namespace dr::mpc
