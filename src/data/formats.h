#pragma once
// The dataset loaders, one file per file format; load_dataset() finds them by
// the `loader` name of the dataset's registry entry (arch/datasets.h).
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "data/dataset.h"

namespace dr::data {

// limit > 0: only the first `limit` train and test images are read.
DataSplit load_cifar10(const arch::DataSource& src, int64_t limit);       // cifar.cpp
DataSplit load_cifar100(const arch::DataSource& src, int64_t limit);      // cifar.cpp
DataSplit load_idx(const arch::DataSource& src, int64_t limit);           // idx.cpp
DataSplit load_jpeg_folders(const arch::DataSource& src, int64_t limit);  // tinyimagenet.cpp
DataSplit load_synthetic(const arch::DataSource& src, int64_t limit);     // synthetic.cpp

// JPEG codec (jpeg.cpp), shared by the TinyImageNet loader and the writers.
bool is_jpeg_name(const std::string& file);
// Decodes files[i] into images[i] ([n, 3, h, w]) on several threads;
// DataError naming the first bad file.
void decode_all(const std::vector<std::string>& files, torch::Tensor& images);

}  // namespace dr::data
