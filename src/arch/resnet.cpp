// ResNets with BasicBlocks (resnet10/18/34, the CIFAR 6n+2 family) and
// resnet6 (one conv-BN per block). Definitions: docs/models.md.
#include "arch/builder.h"
#include "arch/family.h"
#include "arch/spec.h"

namespace dr::arch {

namespace {

// Stage i is layer{i}; the stem goes with S1. A block is conv-BN-relu1-conv-BN
// (resnet6: one conv-BN), plus the shortcut (1x1 conv + BN where the shape
// changes), then relu2 after the add (resnet6: relu).
void build_resnet(Builder& b, const ModelSpec& s, const std::vector<int64_t>& widths, const std::vector<int>& blocks,
                  bool single_conv, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(widths[0], s.alpha, spec), s.rho);
  for (size_t st = 0; st < widths.size(); ++st) {
    const int64_t w = width(widths[st], s.alpha, spec);
    for (int i = 0; i < blocks[st]; ++i) {
      const int64_t stride = (i == 0 && st > 0) ? 2 : 1;
      const bool project = stride != 1 || b.shape().c != w;
      b.begin_block("layer" + std::to_string(st + 1) + "." + std::to_string(i), "S" + std::to_string(st + 1), true);
      b.conv("conv1", w, 3, stride);
      b.bn("bn1");
      if (!single_conv) {
        b.relu("relu1", "relu1");
        b.conv("conv2", w, 3, 1);
        b.bn("bn2");
      }
      b.begin_shortcut();
      if (project) {
        b.conv("shortcut.0", w, 1, stride);
        b.bn("shortcut.1");
      }
      b.end_shortcut();
      if (single_conv)
        b.relu("relu", "relu");
      else
        b.relu("relu2", "relu2");
    }
  }
  b.head(classes);
}

void build_imagenet_style(Builder& b, const ModelSpec& s, const std::vector<int>& blocks, int64_t classes) {
  build_resnet(b, s, {64, 128, 256, 512}, blocks, false, classes);
}
void build_resnet6(Builder& b, const ModelSpec& s, const std::vector<int>& blocks, int64_t classes) {
  build_resnet(b, s, {64, 128, 256, 512}, blocks, true, classes);
}
void build_cifar_6n2(Builder& b, const ModelSpec& s, const std::vector<int>& blocks, int64_t classes) {
  build_resnet(b, s, {16, 32, 64}, blocks, false, classes);
}

}  // namespace

std::vector<Family> resnet_families() {
  // Thinning: drop relu2 (the paper's released models) or relu1.
  const std::vector<ThinPolicy> basic = {{"relu2", {"relu2"}}, {"relu1", {"relu1"}}};
  std::vector<Family> f;
  f.push_back({"resnet6", "ResNet, 5 convs: stem + one conv-BN block per stage (one ReLU each)", stage_names(4),
               {}, {1, 1, 1, 1}, "cifar100", build_resnet6});
  f.push_back({"resnet10", "ResNet BasicBlock [1,1,1,1], CIFAR stem", stage_names(4), basic, {1, 1, 1, 1},
               "cifar100", build_imagenet_style});
  f.push_back({"resnet18", "ResNet BasicBlock [2,2,2,2], CIFAR stem", stage_names(4), basic, {2, 2, 2, 2},
               "cifar100", build_imagenet_style});
  f.push_back({"resnet34", "ResNet BasicBlock [3,4,6,3], CIFAR stem", stage_names(4), basic, {3, 4, 6, 3},
               "cifar100", build_imagenet_style});
  for (int n : {3, 5, 7, 9, 18})
    f.push_back({"resnet" + std::to_string(6 * n + 2),
                 "CIFAR ResNet 6n+2, n=" + std::to_string(n) + ", widths 16/32/64", stage_names(3), basic,
                 {n, n, n}, "cifar100", build_cifar_6n2});
  return f;
}

}  // namespace dr::arch
