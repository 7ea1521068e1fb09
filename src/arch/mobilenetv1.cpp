// MobileNetV1 for 32x32 inputs (stride-1 stem). Definition: docs/models.md.
#include "arch/builder.h"
#include "arch/family.h"
#include "arch/spec.h"

namespace dr::arch {

namespace {

// 13 depthwise-separable blocks; stages are the resolutions.
void build_mobilenetv1(Builder& b, const ModelSpec& s, const std::vector<int>&, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(32, s.alpha, spec), s.rho);
  const std::vector<std::pair<int64_t, int64_t>> cfg = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                                                        {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                                                        {512, 1}, {1024, 2}, {1024, 1}};
  int downs = 0;
  for (size_t i = 0; i < cfg.size(); ++i) {
    const auto [out, stride] = cfg[i];
    if (stride == 2) ++downs;
    b.begin_block("blocks." + std::to_string(i), resolution_stage(downs));
    b.conv("dw", b.shape().c, 3, stride, b.shape().c);
    b.bn("dw_bn");
    b.relu("dw_relu", "dw");
    b.conv("pw", width(out, s.alpha, spec), 1, 1);
    b.bn("pw_bn");
    b.relu("pw_relu", "pw");
  }
  b.head(classes);
}

}  // namespace

std::vector<Family> mobilenetv1_families() {
  // Thinning drops the depthwise ReLUs (the paper's choice) or the pointwise ones.
  return {{"mobilenetv1", "MobileNetV1, CIFAR stem (stride 1), stages by resolution", stage_names(5),
           {{"dw", {"dw"}}, {"pw", {"pw"}}}, {}, "cifar100", build_mobilenetv1}};
}

}  // namespace dr::arch
