// deepreduce_bench: times one training step (forward, cross-entropy, backward,
// SGD with Nesterov momentum and weight decay) or one inference step (eval
// mode, no grad) of a deepreduce network on a fixed random batch, the twin of
// bench/bench_torch.py. Prints one JSON line (results on stdout).
//
//   deepreduce_bench --model resnet18:alpha=0.25 --dataset cifar10 --batch 128 \
//       --threads 2 --mode train --warmup 2 --steps 5
//
// --channels-last / --fuse / --mkldnn / --program / --winograd / --chunk-bytes (and the environment
// variable DEEPREDUCE_MALLOC=default) switch the execution levers of nn::Net
// (see docs/performance.md) so each can be measured on its own.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "arch/spec.h"
#include "nn/net.h"
#include "train/provenance.h"
#include "nn/onednn.h"

using namespace dr;

int main(int argc, char** argv) {
  CLI::App app{"Time a training or inference step of a deepreduce network (LibTorch)"};
  std::string model = "resnet18", dataset = "cifar10", mode = "train";
  int64_t batch = 128, warmup = 2, steps = 5;
  int threads = 2;
  uint64_t seed = 0;
  nn::ExecOptions ex;  // the defaults of nn::Net
  app.add_option("--model", model, "Model spec")->capture_default_str();
  app.add_option("--dataset", dataset, "Dataset preset giving the input shape and classes")->capture_default_str();
  app.add_option("--batch", batch, "Images per step")->capture_default_str();
  app.add_option("--threads", threads, "LibTorch intra-op threads")->capture_default_str();
  app.add_option("--mode", mode, "train (forward+backward+SGD step) or eval (no grad)")
      ->check(CLI::IsMember({"train", "eval"}))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--steps", steps, "Timed steps")->capture_default_str();
  app.add_option("--seed", seed, "Seed of the weights and the batch")->capture_default_str();
  app.add_option("--channels-last", ex.channels_last, "NHWC activations and conv weights (0/1)")
      ->capture_default_str();
  app.add_option("--fuse", ex.fuse_inference, "Inference: BatchNorm folded into the convolutions (0/1)")
      ->capture_default_str();
  app.add_option("--mkldnn", ex.mkldnn_inference,
                 "Inference on CPU: oneDNN blocked tensors with prepacked weights (0/1; needs --fuse 1)")
      ->capture_default_str();
  app.add_option("--program", ex.onednn_program,
                 "Inference: deepreduce's oneDNN program (0/1; needs a build with libdnnl-dev, --mkldnn 1)")
      ->capture_default_str();
  app.add_option("--winograd", ex.winograd, "Inference program: Winograd 3x3 convolutions (0/1)")
      ->capture_default_str();
  app.add_option("--chunk-bytes", ex.inference_chunk_bytes,
                 "Fused inference: largest activation per chunk of the batch, bytes (0 = whole batch)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(threads);
  torch::manual_seed(seed);
  const auto in = arch::dataset_input(dataset);
  nn::Net net = nn::build(model, in);
  net->set_exec_options(ex);
  const auto x = torch::randn({batch, in.shape.c, in.shape.h, in.shape.w});
  const auto y = torch::randint(in.classes, {batch}, torch::kInt64);
  torch::optim::SGD opt(net->parameters(),
                        torch::optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(5e-4));

  std::function<double()> step;
  if (mode == "train") {
    net->train();
    step = [&] {
      const auto out = net->forward(x);
      const auto loss = torch::nn::functional::cross_entropy(out, y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      return loss.item<double>();
    };
  } else {
    net->eval();
    step = [&] {
      torch::NoGradGuard ng;
      return net->forward(x).sum().item<double>();
    };
  }
  std::vector<double> times;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) times.push_back(s);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double med = n == 0 ? 0 : (n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]));
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::json j = {{"impl", "deepreduce"},
                      {"spec", net->desc().spec},
                      {"mode", mode},
                      {"batch", batch},
                      {"threads", torch::get_num_threads()},
                      {"steps", steps},
                      {"step_s_median", med},
                      {"step_s_mean", n ? std::accumulate(times.begin(), times.end(), 0.0) / n : 0.0},
                      {"images_per_s", med > 0 ? batch / med : 0.0},
                      {"max_rss_mb", ru.ru_maxrss / 1024.0},
                      {"channels_last", ex.channels_last},
                      {"fuse", ex.fuse_inference},
                      {"mkldnn", ex.mkldnn_inference},
                      {"program", ex.onednn_program && nn::onednn::available()},
                      {"winograd", ex.winograd},
                      {"chunk_bytes", ex.inference_chunk_bytes},
                      {"malloc_tuned", nn::tune_malloc()},
                      {"provenance", train::provenance("cpu", torch::get_num_threads())}};
  std::cout << j.dump() << std::endl;
  return 0;
}
