#pragma once
// The textbook forward of a network from its description alone, with each
// ReLU site computing what its mask's ops say (arch::SiteOp: identity, ReLU,
// polynomial with the site's "<site>.poly" coefficients): none of nn::Net's
// execution machinery. Shared by the tests of masked and polynomial sites.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <istream>
#include <string>
#include <vector>

#include "arch/describe.h"
#include "arch/network.h"
#include "arch/spec.h"
#include "nn/net.h"
#include "test_paths.h"
#include "test_util.h"
#include "train/masks.h"
#include "train/weights.h"

namespace dr::test {

// Non-trivial BatchNorm statistics and affine parameters, so folding matters.
inline void randomise_batch_norms(nn::Net& net) {
  torch::NoGradGuard ng;
  for (auto& item : net->named_buffers()) {
    const auto& n = item.key();
    if (n.size() > 12 && n.substr(n.size() - 12) == "running_mean") item.value().normal_(0, 0.3);
    if (n.size() > 11 && n.substr(n.size() - 11) == "running_var") item.value().uniform_(0.5, 2.0);
  }
  for (auto& item : net->named_parameters())
    if (item.value().dim() == 1 && item.key().find("fc") == std::string::npos) item.value().normal_(0.5, 0.3);
}

// What a live ReLU site computes on x ([N, C, H, W] or [N, C]).
inline torch::Tensor site_reference(const arch::Layer& l, const torch::Tensor& x, const torch::Tensor& poly) {
  if (!l.mask) return torch::relu(x);
  const auto& m = *l.mask;
  torch::Tensor op = torch::tensor(std::vector<int64_t>(m.ops.begin(), m.ops.end()));
  op = x.dim() == 2       ? op.view({1, -1})
       : m.channelwise    ? op.view({1, l.out.c, 1, 1})
                          : op.view({1, l.out.c, l.out.h, l.out.w});
  torch::Tensor y = torch::where(op.eq(1), torch::relu(x), x);
  if (poly.defined()) {
    const std::vector<int64_t> shape = x.dim() == 2 ? std::vector<int64_t>{1, -1} : std::vector<int64_t>{1, -1, 1, 1};
    const auto a = poly[0].view(shape), b = poly[1].view(shape), c = poly[2].view(shape);
    y = torch::where(op.eq(2), a * x * x + b * x + c, y);
  }
  return y;
}

inline torch::Tensor run_reference(const std::vector<arch::Layer>& layers, nn::Net& net, torch::Tensor x,
                                   bool training) {
  auto P = net->named_parameters();
  auto B = net->named_buffers();
  for (const auto& l : layers) {
    const std::string& n = l.name;
    switch (l.op) {
      case arch::Op::Conv:
        // nn::conv2d: the network's own convolution, so that its rounding
        // (not a mask) is not amplified by 4-image BatchNorm statistics.
        x = nn::conv2d(l, x, P[n + ".weight"], l.bias ? P[n + ".bias"] : torch::Tensor());
        break;
      case arch::Op::BatchNorm:
        x = torch::batch_norm(x, P[n + ".weight"], P[n + ".bias"], B[n + ".running_mean"].clone(),
                              B[n + ".running_var"].clone(), training, 0.1, 1e-5, false);
        break;
      case arch::Op::ReLU:
        if (l.live) x = site_reference(l, x, P.contains(n + ".poly") ? P[n + ".poly"] : torch::Tensor());
        break;
      case arch::Op::MaxPool: x = torch::max_pool2d(x, l.kernel, l.stride); break;
      case arch::Op::GlobalAvgPool: x = torch::adaptive_avg_pool2d(x, {1, 1}); break;
      case arch::Op::Flatten: x = x.flatten(1); break;
      case arch::Op::Linear: x = torch::linear(x, P[n + ".weight"], l.bias ? P[n + ".bias"] : torch::Tensor()); break;
    }
  }
  return x;
}

inline torch::Tensor reference(nn::Net& net, torch::Tensor x, bool training) {
  for (const auto& b : net->desc().blocks) {
    torch::Tensor y = run_reference(b.body, net, x, training);
    if (b.residual) y = y + (b.shortcut.empty() ? x : run_reference(b.shortcut, net, x, training));
    x = run_reference(b.post, net, y, training);
  }
  return x;
}

inline double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / (b.abs().max() + 1e-6)).item<double>();
}

// python/deepreduce_model.py on `net`: the layer list of `spec` on `in`,
// net's masks.pt and weights.pt and the input x written to `dir`, then a
// script that runs `before` (Python lines; `d` is the directory), builds the
// twin, loads the weights and prints the logits on the last line.
inline CommandResult run_python_twin(const std::string& dir, nn::Net& net, const std::string& spec,
                                     const arch::InputSpec& in, const torch::Tensor& x, const std::string& before = "") {
  std::ofstream(dir + "/net.json") << arch::network_json(arch::build_network(spec, in), true).dump();
  train::save_masks(dir + "/masks.pt", net->desc());
  train::save_weights(net, dir + "/weights.pt");
  c10::Dict<std::string, at::Tensor> xs;
  xs.insert("x", x);
  const auto bytes = torch::pickle_save(c10::IValue(xs));
  std::ofstream(dir + "/x.pt", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  std::ofstream(dir + "/check.py") << "import sys, torch\n"
                                      "sys.path.insert(0, '" DEEPREDUCE_SOURCE_DIR "/python')\n"
                                      "import deepreduce_model as dm\n"
                                      "d = sys.argv[1]\n"
                                   << before
                                   << "net = dm.from_json(d + '/net.json', masks=d + '/masks.pt')\n"
                                      "net.load_state_dict(torch.load(d + '/weights.pt'))\n"
                                      "net.eval()\n"
                                      "with torch.no_grad():\n"
                                      "    y = net(torch.load(d + '/x.pt')['x'])\n"
                                      "print(' '.join(repr(float(v)) for v in y.flatten()))\n";
  return run_command("/usr/bin/python3 " + dir + "/check.py " + dir);
}

// The logits the twin printed (the rest of `out`) equal net's in eval mode on x.
inline void expect_twin_logits(std::istream& out, nn::Net& net, const torch::Tensor& x, const std::string& what) {
  std::vector<float> py;
  for (float v; out >> v;) py.push_back(v);
  net->eval();
  torch::NoGradGuard ng;
  const torch::Tensor y = net->forward(x);
  ASSERT_EQ(int64_t(py.size()), y.numel()) << what;
  EXPECT_LT(rel_diff(torch::tensor(py).view_as(y), y), 1e-4) << what;
}

}  // namespace dr::test
