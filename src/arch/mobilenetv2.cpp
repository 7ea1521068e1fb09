// MobileNetV2 with torchvision's settings and a stride-1 stem for 32x32
// inputs; widths scaled by alpha throughout (the 1280 head too). The variant
// and how it differs from the appendix's counts: docs/models.md.
#include "arch/builder.h"
#include "arch/family.h"
#include "arch/spec.h"

namespace dr::arch {

namespace {

struct Setting {
  int64_t t, c, n, s;  // expansion, width, repeats, first stride
};

void inverted_residual(Builder& b, const std::string& name, const std::string& stage, int64_t expand, int64_t out,
                       int64_t stride) {
  const int64_t in = b.shape().c, hidden = in * expand;
  const bool residual = stride == 1 && in == out;
  b.begin_block(name, stage, residual);
  if (expand != 1) {
    b.conv("expand", hidden, 1, 1);
    b.bn("expand_bn");
    b.relu("expand_relu", "pw");
  }
  b.conv("dw", hidden, 3, stride, hidden);
  b.bn("dw_bn");
  b.relu("dw_relu", "dw");
  b.conv("project", out, 1, 1);
  b.bn("project_bn");
  if (residual) {
    b.begin_shortcut();
    b.end_shortcut();
  }
}

void build_mobilenetv2(Builder& b, const ModelSpec& s, const std::vector<int>&, int64_t classes) {
  const std::string spec = s.canonical();
  add_stem(b, width(32, s.alpha, spec), s.rho);
  const std::vector<Setting> cfg = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int downs = 0, index = 0;
  for (const auto& c : cfg)
    for (int64_t i = 0; i < c.n; ++i, ++index) {
      const int64_t stride = i == 0 ? c.s : 1;
      if (stride == 2) ++downs;
      inverted_residual(b, "blocks." + std::to_string(index), resolution_stage(downs), c.t, width(c.c, s.alpha, spec),
                        stride);
    }
  b.begin_block("conv_last", resolution_stage(downs));
  b.conv("conv", width(1280, s.alpha, spec), 1, 1);
  b.bn("bn");
  b.relu("relu", "pw");
  b.head(classes);
}

}  // namespace

std::vector<Family> mobilenetv2_families() {
  return {{"mobilenetv2", "MobileNetV2 (torchvision strides, stem stride 1), stages by resolution", stage_names(5),
           {{"dw", {"dw"}}, {"pw", {"pw"}}}, {}, "cifar100", build_mobilenetv2}};
}

}  // namespace dr::arch
