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
    onnx::WriteOptions write;
    std::string masks = "prelu";
  };
  auto o = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand("export", "Write a finished run as an ONNX model (opset 13: EzPC's OnnxBridge, "
                                           "CrypTen), removed ReLUs absent, masks as PRelu or in OnnxBridge's ops");
  cmd->add_option("RUN", o->run, "Run directory (finished)")->required();
  cmd->add_option("--out", o->out, "The ONNX file to write (<name>.onnx; replaced atomically)")->required();
  cmd->add_flag("--fold-bn", o->write.fold_bn, "Fold each BatchNorm into the convolution before it");
  cmd->add_option("--masks", o->masks,
                  "How masked sites of ReLUs and identities are written: prelu (a PRelu of 0/1 slopes: CrypTen, "
                  "onnxruntime) or onnxbridge (only ops EzPC's OnnxBridge lowers: a channel mask after a convolution "
                  "splits it into channel runs, Relu on the ReLU runs, Concat; any other mask relu(x)*R + x*(1-R) in "
                  "Relu, Mul and Add)")
      ->check(CLI::IsMember({"prelu", "onnxbridge"}))
      ->capture_default_str();
  cmd->callback([o] {
    o->write.masks = o->masks == "onnxbridge" ? onnx::MaskForm::OnnxBridge : onnx::MaskForm::PRelu;
    const onnx::WriteReport r = pipeline::export_run(o->run, o->out, o->write);
    std::cout << "wrote " << o->out << ": " << r.nodes << " nodes, " << r.initializers << " initializers, "
              << report::thousands(r.bytes) << " bytes, opset 13";
    if (o->write.fold_bn) std::cout << "; " << r.folded_bn << " BatchNorms folded into their convolutions";
    if (r.prelu_sites) std::cout << "; " << r.prelu_sites << " pixel-masked ReLU sites as PRelu (slope 0: ReLU)";
    if (r.split_sites)
      std::cout << "; " << r.split_sites
                << " channel-masked sites split by channels (a convolution's, or 1x1 selections after an add), Relu on "
                   "the ReLU channels only, and Concat";
    if (r.muladd_sites)
      std::cout << "; " << r.muladd_sites
                << " element-masked sites as relu(x)*R + x*(1-R) in Mul/Add (the same function; their Relu runs on "
                   "every element)";
    if (r.poly_sites) std::cout << "; " << r.poly_sites << " sites with polynomials as Mul/Add";
    std::cout << "\n";
  });
}

}  // namespace dr::cli
