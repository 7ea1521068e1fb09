#include "arch/describe.h"

namespace dr::arch {

namespace {

nlohmann::json totals_json(const Totals& t) {
  return {{"relus", t.relus}, {"polys", t.polys}, {"flops", t.flops}, {"params", t.params}};
}

}  // namespace

nlohmann::json network_json(const Network& net, bool with_layers) {
  nlohmann::json j = {{"spec", net.spec},   {"family", net.family},
                      {"input", net.input.str()}, {"classes", net.classes}};
  j.update(totals_json(net.totals()));
  j["stages"] = nlohmann::json::array();
  for (const auto& s : net.stage_totals()) {
    auto row = totals_json(s.totals);
    row["name"] = s.name;
    j["stages"].push_back(row);
  }
  if (with_layers) {
    // Enough to rebuild the network elsewhere (bench/, python/deepreduce_model.py):
    // each layer's block, its part of the block (y = post(body(x) + shortcut(x))
    // when residual, else post(body(x))) and its geometry.
    j["layers"] = nlohmann::json::array();
    for (const auto& b : net.blocks) {
      const std::pair<const char*, const std::vector<Layer>*> parts[] = {
          {"body", &b.body}, {"shortcut", &b.shortcut}, {"post", &b.post}};
      for (const auto& [part, layers] : parts)
        for (const auto& l0 : *layers) {
          const auto* l = &l0;
          j["layers"].push_back({{"name", l->name},
                                 {"kind", op_name(l->op)},
                                 {"stage", l->stage},
                                 {"out_shape", l->out.str()},
                                 {"live", l->op != Op::ReLU || l->live},
                                 {"relus", l->relus()},
                                 {"polys", l->polys()},
                                 {"flops", l->flops()},
                                 {"params", l->params()},
                                 {"block", b.name},
                                 {"residual", b.residual},
                                 {"part", part},
                                 {"in_shape", l->in.str()},
                                 {"in_ch", l->in_ch},
                                 {"out_ch", l->out_ch},
                                 {"kernel", l->kernel},
                                 {"stride", l->stride},
                                 {"padding", l->padding},
                                 {"groups", l->groups},
                                 {"bias", l->bias}});
        }
    }
  }
  return j;
}

}  // namespace dr::arch
