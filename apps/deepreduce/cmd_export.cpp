// `deepreduce export RUN --out model.onnx`: a finished run for another PI
// framework (docs/onnx.md, "Out").
#include <iostream>

#include "commands.h"
#include "pipeline/onnx_model.h"
#include "report/format.h"

namespace dr::cli {

void add_export_command(CLI::App& app) {
  struct ExportOptions {
    std::string run, out;
    bool fold_bn = false;
  };
  auto o = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand("export", "Write a finished run as an ONNX model (opset 13: EzPC's OnnxBridge, "
                                           "CrypTen), removed ReLUs absent, pixel masks as PRelu");
  cmd->add_option("RUN", o->run, "Run directory (finished)")->required();
  cmd->add_option("--out", o->out, "The ONNX file to write (<name>.onnx; replaced atomically)")->required();
  cmd->add_flag("--fold-bn", o->fold_bn, "Fold each BatchNorm into the convolution before it");
  cmd->callback([o] {
    const onnx::WriteReport r = pipeline::export_run(o->run, o->out, o->fold_bn);
    std::cout << "wrote " << o->out << ": " << r.nodes << " nodes, " << r.initializers << " initializers, "
              << report::thousands(r.bytes) << " bytes, opset 13";
    if (o->fold_bn) std::cout << "; " << r.folded_bn << " BatchNorms folded into their convolutions";
    if (r.prelu_sites) std::cout << "; " << r.prelu_sites << " pixel-masked ReLU sites as PRelu (slope 0: ReLU)";
    if (r.poly_sites) std::cout << "; " << r.poly_sites << " sites with polynomials as Mul/Add";
    std::cout << "\n";
  });
}

}  // namespace dr::cli
