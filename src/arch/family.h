#pragma once
// Model families: one registry entry per family, with everything the rest of
// deepreduce needs to know about it (stages, thinning policies, blocks,
// default input, the builder of its description). Every list of families
// (`deepreduce models`, the spec parser's messages, the pipeline) is
// generated from the registry in families.cpp.
//
// Adding a family: one new file (e.g. src/arch/densenet.cpp) defining
// `std::vector<Family> densenet_families()` in dr::arch, and its name on the
// one registry line of families.cpp (DR_FAMILY_FILES). Nothing else.
#include <memory>
#include <string>
#include <vector>

#include "arch/network.h"

namespace dr::arch {

class Builder;
struct ModelSpec;

// A thinning policy: the ReLU roles it removes in the stages that keep ReLUs.
struct ThinPolicy {
  std::string name;                // "relu2", "alternate", "dw", ...
  std::vector<std::string> roles;  // Layer::role values it removes
};

struct Family {
  std::string name;
  std::string description;
  std::vector<std::string> stages;        // at the family's default blocks
  std::vector<ThinPolicy> thin_policies;  // first one is the default; empty: thinning undefined
  std::vector<int> default_blocks;        // empty when blocks= is not accepted
  std::string default_dataset;
  // Appends the family's layers (stem to classifier) for a parsed spec, with
  // `blocks` already resolved (the spec's or the default).
  void (*build)(Builder& b, const ModelSpec& spec, const std::vector<int>& blocks, int64_t classes) = nullptr;

  std::vector<std::string> policy_names() const;
  // The policy named `name`, or nullptr.
  const ThinPolicy* policy(const std::string& name) const;
};

// Every family, in the order `deepreduce models` lists them.
const std::vector<Family>& families();
// Throws SpecError "unknown model family 'x' (accepted: resnet6, ...)". A
// name that is a network file (is_network_file) is that file's family, read
// once per process: its stages, thinning "relu2" (the ReLUs after residual
// adds, the default) or "relu1" (those inside residual bodies), no alpha,
// rho or blocks.
const Family& find_family(const std::string& name);
// The network of a file's family (find_family of a network file) with every
// ReLU live, which build_network copies instead of calling `build`; null for
// the zoo's families.
const Network* file_network(const Family& fam);

// Network files: a spec whose family ends in ".onnx" names a model file,
// e.g. /data/model.onnx:cull=S1. src/onnx reads them; it installs its reader
// here (onnx::install_network_reader(), which the CLI's main calls), so arch
// stays free of the ONNX libraries. The description says what the file is
// ("ONNX from pytorch 1.13.0, opset 13"): its family's description.
struct NetworkFile {
  Network net;
  std::string description;
};
using NetworkFileReader = NetworkFile (*)(const std::string& path);
void set_network_file_reader(NetworkFileReader reader);
bool is_network_file(const std::string& name);

// "S1".."Sn".
std::vector<std::string> stage_names(int n);

// The families whose spec accepts blocks= (a non-empty default_blocks), for
// messages: "resnet6, resnet18, ...".
std::vector<std::string> families_with_blocks();

}  // namespace dr::arch
