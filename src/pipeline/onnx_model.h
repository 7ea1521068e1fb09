#pragma once
// The torch edge of src/onnx: an imported ONNX model as a LibTorch network
// with its weights, and its test accuracy on a dataset.
#include <string>
#include <vector>

#include "nn/net.h"
#include "onnx/reader.h"
#include "onnx/writer.h"
#include "train/trainer.h"
#include "train/weights.h"

namespace dr::pipeline {

// nn::Net of the model's description with its weights (loaded strictly).
nn::Net onnx_network(const onnx::Model& m);

struct OnnxEvalOptions {
  std::string model;  // path of the .onnx file
  std::string data;   // a --data source (required: a model has no dataset)
  // The normalisation the model was trained with, per channel; empty: the
  // data's own statistics (what deepreduce's training uses).
  std::vector<double> mean, std;
  int threads = 0;
  std::string device = "auto";
};

// Test accuracy and loss of the model on the test split of o.data. Throws
// onnx::ReadError for the model, std::invalid_argument when the data does
// not fit it (shape, classes) or a normalisation is not one value per channel.
train::EvalResult evaluate_onnx(const OnnxEvalOptions& o);

// The finished run `run` (its files checked as eval checks them) as an ONNX
// file at `out` (onnx/writer.h says what each layer becomes). Throws
// std::invalid_argument when `out` does not end in ".onnx". Records
// deepreduce's version as the producer's.
onnx::WriteReport export_run(const std::string& run, const std::string& out, onnx::WriteOptions o);

}  // namespace dr::pipeline
