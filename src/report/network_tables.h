#pragma once
// Where a network's ReLUs, FLOPs and params are: the tables of `deepreduce
// count` and the appendix's Figure 7.
#include <string>

#include "arch/network.h"
#include "report/table.h"

namespace dr::report {

// Per stage (then head/FC and total): ReLUs, FLOPs, params and their shares.
Table stage_table(const arch::Network& net);
// Per layer: kind (removed ReLUs marked), stage, output shape, ReLUs, FLOPs, params.
Table layer_table(const arch::Network& net);
// Figure 7 of the appendix: per conv/FC layer, its share of params, FLOPs and
// ReLUs (a ReLU is charged to the conv/FC whose output it sees; a ResNet's
// post-add relu2 to the block's last body conv). PNG or SVG by extension.
void plot_figure7(const arch::Network& net, const std::string& file);

}  // namespace dr::report
