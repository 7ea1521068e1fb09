#pragma once
// Datasets and the training batch loader.
//
// load_dataset() reads CIFAR-10/100 (binary version), TinyImageNet (JPEG
// folders), Fashion-MNIST (gzipped IDX) or builds a synthetic learnable set,
// into uint8 [N, C, H, W] tensors. BatchLoader turns a Dataset into float32
// batches: shuffled, augmented (reflect pad + random crop + horizontal flip,
// docs/method.md section 4) and normalised with the per-channel train mean/std.
// Everything is deterministic: the same (source, limit) gives the same
// tensors, the same (seed, epoch) the same batches whatever the number of
// worker threads or the data-parallel world size.

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dr::data {

// Bad or missing data. The message names the file and the problem.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Dataset {
  std::string name;              // "cifar10", "fashion-mnist", ...
  torch::Tensor images;          // uint8 [N, C, H, W], contiguous, CPU
  torch::Tensor labels;          // int64 [N]
  int64_t classes = 0;
  std::vector<float> mean, std;  // per channel, in [0,1] units, from the TRAIN split
  int64_t size() const;
  int64_t channels() const;      // C (0 when empty)
  int64_t height() const;        // H
  int64_t width() const;         // W
};

struct DataSplit {
  Dataset train, test;
};

// `source` is NAME[:PATH], NAME a dataset of the registry (arch/datasets.h:
// cifar10, cifar100, tinyimagenet, fashion-mnist, synthetic, or an alias)
// and PATH its directory (default: the entry's default path; synthetic:
// [CxHxW[:CLASSES[:N]]]). Formats, one file each in src/data:
//  - cifar10/cifar100    the binary version (cifar.cpp), fine labels for CIFAR-100,
//                        in DIR or DIR/cifar-10-batches-bin, DIR/cifar-100-binary
//  - tinyimagenet        JPEG folders (tinyimagenet.cpp): DIR/wnids.txt (else
//                        sorted dirs of DIR/train), DIR/train/<wnid>/images/*.JPEG,
//                        DIR/val/val_annotations.txt, DIR/val/images/*.JPEG (or
//                        DIR/tiny-imagenet-200/...); 64x64, greyscale replicated
//                        to 3 channels. Train images are ordered round-robin over
//                        the classes, so a `limit` keeps a class-balanced prefix.
//  - fashion-mnist       IDX files, gzipped or not (idx.cpp), 28x28
//  - synthetic           deterministic and learnable (synthetic.cpp): N train,
//                        max(1, N/4) test images
// limit > 0 keeps only the first `limit` train and the first `limit` test images.
// mean/std come from the (possibly limited) train split; test gets the same values.
// Throws arch::SpecError for a bad source (unknown name, bad synthetic
// shape), DataError (file + problem) for missing or bad data.
DataSplit load_dataset(const std::string& source, int64_t limit = 0);

// Fills d.mean / d.std from d.images (population std; a zero std becomes 1).
void compute_mean_std(Dataset& d);

struct LoaderOptions {
  int64_t batch = 128;
  bool train = true;  // shuffle + augment when true; fixed order, no augmentation when false
  int pad = 4;        // reflect padding for the random crop (0 = no crop)
  bool flip = true;   // random horizontal flip
  uint64_t seed = 0;
  int workers = 2;    // background threads preparing batches (0 = calling thread)
  int rank = 0, world = 1;  // data-parallel sharding, see BatchLoader
  bool drop_last = false;
  int prefetch = 4;   // batches prepared ahead of the consumer (>= 1; used when workers > 0)
  bool pin = false;   // host batches in page-locked memory (for a CUDA device)
};

// A source of training or test batches, one epoch at a time: the host
// loader (BatchLoader) or the device-resident one (data/device_batches.h).
// Both give the same batches for the same options (see BatchLoader).
class Batches {
 public:
  virtual ~Batches() = default;
  // Starts (or restarts) an epoch. next() without a start_epoch() starts epoch 0.
  virtual void start_epoch(int64_t epoch) = 0;
  // images float32 [B, C, H, W] ((x/255 - mean) / std), labels int64 [B];
  // false at the end of the epoch.
  virtual bool next(torch::Tensor& images, torch::Tensor& labels) = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // Skips up to n batches of the current epoch (resuming); returns how many.
  virtual int64_t skip_batches(int64_t n) = 0;
};

// What both batch sources check and use: `data` with contiguous CPU tensors,
// int64 labels and its mean/std (computed when it has none); opt's workers
// and prefetch clamped. Throws std::invalid_argument naming the dataset.
Dataset checked_for_batches(const Dataset& data, LoaderOptions& opt);
// Batches per epoch of `images` images (a short last one unless drop_last).
int64_t batches_in(int64_t images, const LoaderOptions& opt);

// Batches of one epoch at a time, prepared on the host, per image, ahead on
// worker threads: for data that stays on the host (data/device_batches.h says
// when). Global batch k holds the images
// perm[k*batch, (k+1)*batch) where perm depends only on (seed, epoch) (identity
// when !train). With world > 1 every global batch is cut into `world` equal
// contiguous slices and this rank gets slice `rank` (batch % world == 0). A
// short last batch (drop_last = false) is cut as evenly as possible, so a
// rank may then get an empty [0, C, H, W] batch; every rank always gets the
// same number of batches. The augmentation of an image depends only on (seed,
// epoch, global batch index, position in the global batch), so results are
// identical whatever `workers` and the slices of all ranks concatenate to the
// world = 1 batch.
class BatchLoader : public Batches {
 public:
  BatchLoader(const Dataset& data, LoaderOptions opt);
  ~BatchLoader() override;
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  void start_epoch(int64_t epoch) override;
  bool next(torch::Tensor& images, torch::Tensor& labels) override;
  int64_t batches_per_epoch() const override;
  int64_t skip_batches(int64_t n) override;
  const LoaderOptions& options() const { return opt_; }

 private:
  struct Ready {
    torch::Tensor images, labels;
    std::exception_ptr error;
  };
  void make_batch(const std::vector<int64_t>& perm, int64_t epoch, int64_t k, Ready& out) const;
  void worker_loop();
  void stop_workers();

  Dataset data_;
  LoaderOptions opt_;
  int64_t n_ = 0, batches_ = 0;
  std::vector<float> lut_;  // uint8 -> normalised float: lut_[c * 256 + v] (normalisation_table)
  // Epoch state (guarded by mu_ when workers > 0).
  std::shared_ptr<const std::vector<int64_t>> perm_;
  int64_t epoch_ = 0;
  bool started_ = false;
  uint64_t generation_ = 0;
  int64_t next_claim_ = 0, next_consume_ = 0;
  std::map<int64_t, Ready> ready_;
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_ready_;
  std::vector<std::thread> threads_;
};

// Writers for the real formats (tests, and users making small sets).
// images_u8 uint8 [N, 3, 32, 32]; labels int64 [N]. cifar100 writes
// (coarse = fine / 5, fine) label bytes.
void write_cifar_bin(const std::string& path, const torch::Tensor& images_u8,
                     const torch::Tensor& labels, bool cifar100);
// images_u8 uint8 [N, H, W] or [N, 1, H, W]; writes gzipped IDX files.
void write_idx_gz(const std::string& images_path, const std::string& labels_path,
                  const torch::Tensor& images_u8, const torch::Tensor& labels);
// image uint8 [1 or 3, H, W]: greyscale or RGB baseline JPEG.
void write_jpeg(const std::string& path, const torch::Tensor& image_u8_chw, int quality = 95);
// Decodes one JPEG into uint8 [3, H, W] (greyscale replicated). Throws DataError.
torch::Tensor read_jpeg(const std::string& path);

}  // namespace dr::data
