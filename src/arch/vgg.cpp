// VGG16 with BatchNorm and the 4096-4096 classifier. Definition: docs/models.md.
#include "arch/builder.h"
#include "arch/family.h"
#include "arch/spec.h"

namespace dr::arch {

namespace {

// Stages S1..S5 are the conv groups; the FC ReLUs form stage "FC", never culled.
void build_vgg16(Builder& b, const ModelSpec& s, const std::vector<int>&, int64_t classes) {
  const std::vector<std::vector<int64_t>> cfg = {
      {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  const std::string spec = s.canonical();
  for (size_t st = 0; st < cfg.size(); ++st) {
    b.begin_block("stage" + std::to_string(st + 1), "S" + std::to_string(st + 1));
    for (size_t i = 0; i < cfg[st].size(); ++i) {
      const std::string n = std::to_string(i + 1);
      b.conv("conv" + n, width(cfg[st][i], s.alpha, spec), 3, st == 0 && i == 0 ? stem_stride(s.rho) : 1);
      b.bn("bn" + n);
      b.relu("relu" + n, "vgg" + n);
    }
    b.maxpool("pool");
  }
  const int64_t hidden = width(4096, s.alpha, spec);
  b.begin_block("classifier", "FC");
  b.flatten("flatten");
  b.linear("fc1", hidden);
  b.relu("relu1", "fc");
  b.linear("fc2", hidden);
  b.relu("relu2", "fc");
  b.linear("fc3", classes);
}

}  // namespace

std::vector<Family> vgg_families() {
  // Thinning keeps the 1st and 3rd conv ReLU of a stage and drops the 2nd.
  return {{"vgg16", "VGG16-BN, FC 4096-4096 (FC ReLUs never culled)", stage_names(5), {{"alternate", {"vgg2"}}}, {},
           "cifar10", build_vgg16}};
}

}  // namespace dr::arch
