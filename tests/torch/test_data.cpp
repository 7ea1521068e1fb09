// Datasets (every format through its writer and reader, limits, bad data) and
// the BatchLoader (shapes, coverage, determinism, sharding, augmentation,
// normalisation).

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "arch/datasets.h"
#include "data/dataset.h"
#include "data/device_batches.h"
#include "util/fs.h"

using namespace dr::data;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path = (fs::path(testing::TempDir()) / ("dr_data_" + std::string(info->test_suite_name()) + "_" + info->name() +
                                            "_" + std::to_string(::getpid())))
               .string();
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& f) const { return (fs::path(path) / f).string(); }
};

torch::Tensor rand_u8(std::vector<int64_t> shape, uint64_t seed) {
  auto g = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  return torch::randint(0, 256, shape, g, torch::kUInt8);
}
torch::Tensor rand_labels(int64_t n, int64_t classes, uint64_t seed) {
  auto g = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  return torch::randint(0, classes, {n}, g, torch::kInt64);
}

template <class F>
std::string data_error(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<other exception> ") + e.what();
  }
  return "<no exception>";
}

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "message: " << (msg)

void write_bytes(const std::string& path, const std::string& bytes) { dr::util::write_file_atomic(path, bytes); }

void write_gz_bytes(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), int(bytes.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string be32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = char(v >> 24), s[1] = char(v >> 16), s[2] = char(v >> 8), s[3] = char(v);
  return s;
}

void expect_stats(const Dataset& d) {
  auto x = d.images.to(torch::kFloat64).div(255.0);
  auto m = x.mean({0, 2, 3}), s = x.std({0, 2, 3}, /*unbiased=*/false);
  ASSERT_EQ(int64_t(d.mean.size()), d.images.size(1));
  for (int64_t c = 0; c < d.images.size(1); ++c) {
    EXPECT_NEAR(d.mean[c], m[c].item<double>(), 1e-5);
    EXPECT_NEAR(d.std[c], s[c].item<double>(), 1e-5);
  }
}

// ---------------------------------------------------------------- CIFAR --
struct CifarFiles {
  torch::Tensor train, train_labels, test, test_labels;
};

CifarFiles write_cifar10(const std::string& dir, int64_t per_batch = 10, int64_t ntest = 7) {
  CifarFiles f;
  f.train = rand_u8({5 * per_batch, 3, 32, 32}, 1);
  f.train_labels = rand_labels(5 * per_batch, 10, 2);
  f.train_labels[3] = 9;
  f.test = rand_u8({ntest, 3, 32, 32}, 3);
  f.test_labels = rand_labels(ntest, 10, 4);
  for (int b = 0; b < 5; ++b)
    write_cifar_bin(dir + "/data_batch_" + std::to_string(b + 1) + ".bin",
                    f.train.slice(0, b * per_batch, (b + 1) * per_batch),
                    f.train_labels.slice(0, b * per_batch, (b + 1) * per_batch), false);
  write_cifar_bin(dir + "/test_batch.bin", f.test, f.test_labels, false);
  return f;
}

TEST(DataCifar, Cifar10RoundTrip) {
  TempDir d;
  auto f = write_cifar10(d.path);
  auto s = load_dataset("cifar10:" + d.path);
  EXPECT_EQ(s.train.name, "cifar10");
  EXPECT_EQ(s.train.classes, 10);
  EXPECT_EQ(s.test.classes, 10);
  EXPECT_EQ(s.train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(s.train.labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(s.train.images.is_contiguous());
  EXPECT_EQ(s.train.size(), 50);
  EXPECT_EQ(s.test.size(), 7);
  EXPECT_TRUE(torch::equal(s.train.images, f.train));
  EXPECT_TRUE(torch::equal(s.train.labels, f.train_labels));
  EXPECT_TRUE(torch::equal(s.test.images, f.test));
  EXPECT_TRUE(torch::equal(s.test.labels, f.test_labels));
  expect_stats(s.train);
  EXPECT_EQ(s.test.mean, s.train.mean);
  EXPECT_EQ(s.test.std, s.train.std);
}

TEST(DataCifar, Cifar10SubdirAndLimit) {
  TempDir d;
  auto f = write_cifar10(d / "cifar-10-batches-bin");
  auto s = load_dataset("cifar10:" + d.path, 23);  // spans three batch files
  EXPECT_EQ(s.train.size(), 23);
  EXPECT_EQ(s.test.size(), 7);
  EXPECT_TRUE(torch::equal(s.train.images, f.train.slice(0, 0, 23)));
  EXPECT_TRUE(torch::equal(s.train.labels, f.train_labels.slice(0, 0, 23)));
  expect_stats(s.train);
  auto s2 = load_dataset("cifar10:" + d.path, 3);
  EXPECT_EQ(s2.test.size(), 3);
  EXPECT_TRUE(torch::equal(s2.test.images, f.test.slice(0, 0, 3)));
}

TEST(DataCifar, Cifar100FineLabels) {
  TempDir d;
  auto train = rand_u8({30, 3, 32, 32}, 5), test = rand_u8({6, 3, 32, 32}, 6);
  auto tl = rand_labels(30, 100, 7), vl = rand_labels(6, 100, 8);
  tl[0] = 99;
  tl[1] = 0;
  write_cifar_bin(d / "train.bin", train, tl, true);
  write_cifar_bin(d / "test.bin", test, vl, true);
  EXPECT_EQ(fs::file_size(d / "train.bin"), 30u * 3074u);
  auto s = load_dataset("cifar100:" + d.path);
  EXPECT_EQ(s.train.name, "cifar100");
  EXPECT_EQ(s.train.classes, 100);
  EXPECT_TRUE(torch::equal(s.train.images, train));
  EXPECT_TRUE(torch::equal(s.train.labels, tl));
  EXPECT_TRUE(torch::equal(s.test.images, test));
  EXPECT_TRUE(torch::equal(s.test.labels, vl));
  auto l = load_dataset("cifar100:" + d.path, 4);
  EXPECT_EQ(l.train.size(), 4);
  EXPECT_EQ(l.test.size(), 4);
  EXPECT_TRUE(torch::equal(l.train.labels, tl.slice(0, 0, 4)));
}

TEST(DataCifarBad, MissingFiles) {
  TempDir d;
  auto m = data_error([&] { load_dataset("cifar10:" + d / "nope"); });
  EXPECT_HAS(m, "data_batch_1.bin");
  EXPECT_HAS(m, "not found");
  write_cifar10(d.path);
  fs::remove(d / "test_batch.bin");
  m = data_error([&] { load_dataset("cifar10:" + d.path); });
  EXPECT_HAS(m, "test_batch.bin");
  EXPECT_HAS(m, "not found");
  m = data_error([&] { load_dataset("cifar100:" + d.path); });
  EXPECT_HAS(m, "train.bin");
}

TEST(DataCifarBad, WrongSize) {
  TempDir d;
  write_cifar10(d.path);
  std::ofstream(d / "data_batch_3.bin", std::ios::app | std::ios::binary) << "xyz";
  auto m = data_error([&] { load_dataset("cifar10:" + d.path); });
  EXPECT_HAS(m, "data_batch_3.bin");
  EXPECT_HAS(m, "multiple of the record size 3073");
  write_bytes(d / "data_batch_3.bin", "");
  m = data_error([&] { load_dataset("cifar10:" + d.path); });
  EXPECT_HAS(m, "data_batch_3.bin");
  EXPECT_HAS(m, "empty");
}

TEST(DataCifarBad, LabelOutOfRange) {
  TempDir d;
  write_cifar10(d.path);
  std::string rec(3073, '\0');
  rec[0] = 12;
  write_bytes(d / "data_batch_2.bin", rec + rec);
  auto m = data_error([&] { load_dataset("cifar10:" + d.path); });
  EXPECT_HAS(m, "data_batch_2.bin");
  EXPECT_HAS(m, "label 12");
  std::string rec100(3074, '\0');
  rec100[1] = char(100);
  write_bytes(d / "c100/train.bin", rec100);
  write_bytes(d / "c100/test.bin", std::string(3074, '\0'));
  m = data_error([&] { load_dataset("cifar100:" + d / "c100"); });
  EXPECT_HAS(m, "train.bin");
  EXPECT_HAS(m, "label 100");
}

// ------------------------------------------------------------- Fashion --
TEST(DataFashion, IdxRoundTripAndLimit) {
  TempDir d;
  auto train = rand_u8({20, 28, 28}, 11), test = rand_u8({12, 1, 28, 28}, 12);
  auto tl = rand_labels(20, 10, 13), vl = rand_labels(12, 10, 14);
  write_idx_gz(d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz", train, tl);
  write_idx_gz(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz", test, vl);
  auto s = load_dataset("fashion-mnist:" + d.path);
  EXPECT_EQ(s.train.name, "fashion-mnist");
  EXPECT_EQ(s.train.classes, 10);
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{20, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(s.train.images, train.unsqueeze(1)));
  EXPECT_TRUE(torch::equal(s.train.labels, tl));
  EXPECT_TRUE(torch::equal(s.test.images, test));
  EXPECT_TRUE(torch::equal(s.test.labels, vl));
  expect_stats(s.train);
  auto l = load_dataset("fashion-mnist:" + d.path, 5);
  EXPECT_EQ(l.train.size(), 5);
  EXPECT_EQ(l.test.size(), 5);
  EXPECT_TRUE(torch::equal(l.train.images, train.slice(0, 0, 5).unsqueeze(1)));
  EXPECT_TRUE(torch::equal(l.test.labels, vl.slice(0, 0, 5)));
}

TEST(DataFashion, RealFashionMnist) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << dir << " not present";
  auto s = load_dataset("fashion-mnist", 1000);
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{1000, 1, 28, 28}));
  EXPECT_EQ(s.test.images.sizes(), (std::vector<int64_t>{1000, 1, 28, 28}));
  EXPECT_GE(s.train.labels.min().item<int64_t>(), 0);
  EXPECT_LE(s.train.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(std::get<0>(torch::_unique(s.train.labels)).numel(), 10);
  EXPECT_NEAR(s.train.mean[0], 0.286, 0.03);  // Fashion-MNIST: mean 0.2860, std 0.3530
  EXPECT_NEAR(s.train.std[0], 0.353, 0.03);
}

struct IdxDir {
  TempDir d;
  std::string ip, lp;
  IdxDir() : ip(d / "train-images-idx3-ubyte.gz"), lp(d / "train-labels-idx1-ubyte.gz") {
    write_idx_gz(d / "t10k-images-idx3-ubyte.gz", d / "t10k-labels-idx1-ubyte.gz", rand_u8({4, 28, 28}, 1),
                 rand_labels(4, 10, 2));
    write_idx_gz(ip, lp, rand_u8({10, 28, 28}, 3), rand_labels(10, 10, 4));
  }
  std::string load_error() {
    return data_error([&] { load_dataset("fashion-mnist:" + d.path); });
  }
};

TEST(DataFashionBad, BadMagic) {
  IdxDir x;
  write_gz_bytes(x.ip, be32(2052) + be32(1) + be32(28) + be32(28) + std::string(784, '\0'));
  auto m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
  EXPECT_HAS(m, "magic");
  write_idx_gz(x.d / "train-images-idx3-ubyte.gz", x.d / "train-labels-idx1-ubyte.gz", rand_u8({10, 28, 28}, 3),
               rand_labels(10, 10, 4));
  write_gz_bytes(x.lp, be32(2051) + be32(10) + std::string(10, '\0'));
  m = x.load_error();
  EXPECT_HAS(m, "train-labels-idx1-ubyte.gz");
  EXPECT_HAS(m, "magic");
}

TEST(DataFashionBad, Truncated) {
  IdxDir x;
  write_gz_bytes(x.ip, be32(2051) + be32(10) + be32(28) + be32(28) + std::string(784 * 5 + 17, '\0'));
  auto m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
  EXPECT_HAS(m, "truncated");
  write_gz_bytes(x.ip, be32(2051) + be32(10));
  m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
  EXPECT_HAS(m, "truncated");
  write_gz_bytes(x.ip, "");
  m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
}

TEST(DataFashionBad, CorruptGzip) {
  IdxDir x;
  std::string bytes = dr::util::read_file(x.ip);
  ASSERT_GT(bytes.size(), 100u);
  for (size_t i = 20; i < bytes.size() - 20; i += 3) bytes[i] = char(bytes[i] ^ 0x5A);
  write_bytes(x.ip, bytes);
  auto m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
}

TEST(DataFashionBad, CountMismatchAndLabelRange) {
  IdxDir x;
  write_gz_bytes(x.lp, be32(2049) + be32(9) + std::string(9, '\1'));
  auto m = x.load_error();
  EXPECT_HAS(m, "train-images-idx3-ubyte.gz");
  EXPECT_HAS(m, "train-labels-idx1-ubyte.gz");
  EXPECT_HAS(m, "10 images but 9 labels");
  write_gz_bytes(x.lp, be32(2049) + be32(10) + std::string(9, '\1') + std::string(1, char(10)));
  m = x.load_error();
  EXPECT_HAS(m, "train-labels-idx1-ubyte.gz");
  EXPECT_HAS(m, "is 10");
  fs::remove(x.lp);
  m = x.load_error();
  EXPECT_HAS(m, "train-labels-idx1-ubyte");
  EXPECT_HAS(m, "not found");
}

// -------------------------------------------------------- TinyImageNet --
// A smooth image (JPEG keeps it within a few levels).
torch::Tensor smooth(int64_t c, int64_t h, int64_t w, int k) {
  auto y = torch::arange(h).view({1, h, 1}), x = torch::arange(w).view({1, 1, w});
  auto ch = torch::arange(c).view({c, 1, 1});
  return (20 + ch * 40 + x + y + k * 5).clamp(0, 255).to(torch::kUInt8);
}

struct Tiny {
  std::vector<torch::Tensor> train, val;  // expected order
  std::vector<int64_t> train_labels, val_labels;
};

// wnids.txt lists n03, n01, n02 (so classes 0, 1, 2 = n03, n01, n02).
// n01: a, b (b greyscale); n02: a, b; n03: a. Round-robin order:
// n03/a n01/a n02/a n01/b n02/b (without wnids.txt: n01/a n02/a n03/a n01/b n02/b).
Tiny write_tiny(const std::string& root, bool with_wnids = true) {
  Tiny t;
  if (with_wnids) write_bytes(root + "/wnids.txt", "n03\nn01\nn02\n");
  auto img = [&](const std::string& wnid, const std::string& f, int k, bool grey) {
    auto im = smooth(grey ? 1 : 3, 64, 64, k);
    write_jpeg(root + "/train/" + wnid + "/images/" + f, im, 100);
    return grey ? im.expand({3, 64, 64}).contiguous() : im;
  };
  auto n01a = img("n01", "n01_0.JPEG", 0, false), n01b = img("n01", "n01_1.JPEG", 1, true);
  auto n02a = img("n02", "n02_0.JPEG", 2, false), n02b = img("n02", "n02_1.JPEG", 3, false);
  auto n03a = img("n03", "n03_0.JPEG", 4, false);
  write_bytes(root + "/train/n01/n01_boxes.txt", "ignored\n");
  if (with_wnids) {
    t.train = {n03a, n01a, n02a, n01b, n02b};
    t.train_labels = {0, 1, 2, 1, 2};
  } else {  // sorted: n01 n02 n03
    t.train = {n01a, n02a, n03a, n01b, n02b};
    t.train_labels = {0, 1, 2, 0, 1};
  }
  std::string ann;
  const char* wn[] = {"n02", "n03", "n01"};
  for (int i = 0; i < 3; ++i) {
    auto im = smooth(3, 64, 64, 2 * i);
    write_jpeg(root + "/val/images/val_" + std::to_string(i) + ".JPEG", im, 100);
    ann += "val_" + std::to_string(i) + ".JPEG\t" + wn[i] + "\t0\t0\t63\t63\n";
    t.val.push_back(im);
  }
  t.val_labels = with_wnids ? std::vector<int64_t>{2, 0, 1} : std::vector<int64_t>{1, 2, 0};
  write_bytes(root + "/val/val_annotations.txt", ann);
  return t;
}

void expect_close_images(const torch::Tensor& got, const std::vector<torch::Tensor>& want) {
  ASSERT_EQ(got.size(0), int64_t(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    auto diff = (got[i].to(torch::kInt32) - want[i].to(torch::kInt32)).abs();
    EXPECT_LE(diff.max().item<int>(), 12) << "image " << i;
    EXPECT_LT(diff.to(torch::kFloat).mean().item<float>(), 2.f) << "image " << i;
  }
}

TEST(DataTiny, RoundTrip) {
  TempDir d;
  auto t = write_tiny(d.path);
  auto s = load_dataset("tinyimagenet:" + d.path);
  EXPECT_EQ(s.train.name, "tinyimagenet");
  EXPECT_EQ(s.train.classes, 3);
  EXPECT_EQ(s.train.images.sizes(), (std::vector<int64_t>{5, 3, 64, 64}));
  EXPECT_EQ(std::vector<int64_t>(s.train.labels.data_ptr<int64_t>(), s.train.labels.data_ptr<int64_t>() + 5),
            t.train_labels);
  expect_close_images(s.train.images, t.train);
  // The greyscale image is replicated to three identical channels.
  auto grey = s.train.images[3];
  EXPECT_TRUE(torch::equal(grey[0], grey[1]));
  EXPECT_TRUE(torch::equal(grey[0], grey[2]));
  EXPECT_EQ(s.test.size(), 3);
  EXPECT_EQ(std::vector<int64_t>(s.test.labels.data_ptr<int64_t>(), s.test.labels.data_ptr<int64_t>() + 3),
            t.val_labels);
  expect_close_images(s.test.images, t.val);
  expect_stats(s.train);

  auto l = load_dataset("tinyimagenet:" + d.path, 2);
  EXPECT_EQ(l.train.size(), 2);
  EXPECT_EQ(l.test.size(), 2);
  EXPECT_TRUE(torch::equal(l.train.images, s.train.images.slice(0, 0, 2)));
  EXPECT_TRUE(torch::equal(l.test.labels, s.test.labels.slice(0, 0, 2)));
}

TEST(DataTiny, SortedDirsWithoutWnids) {
  TempDir d;
  auto t = write_tiny(d / "tiny-imagenet-200", false);
  auto s = load_dataset("tinyimagenet:" + d.path);
  EXPECT_EQ(s.train.classes, 3);
  EXPECT_EQ(std::vector<int64_t>(s.train.labels.data_ptr<int64_t>(), s.train.labels.data_ptr<int64_t>() + 5),
            t.train_labels);
  EXPECT_EQ(std::vector<int64_t>(s.test.labels.data_ptr<int64_t>(), s.test.labels.data_ptr<int64_t>() + 3),
            t.val_labels);
  expect_close_images(s.train.images, t.train);
}

TEST(DataTiny, ReadWriteJpegAnySize) {
  TempDir d;
  auto im = smooth(3, 5, 7, 1);
  write_jpeg(d / "x.jpg", im, 100);
  auto back = read_jpeg(d / "x.jpg");
  EXPECT_EQ(back.sizes(), (std::vector<int64_t>{3, 5, 7}));
  write_jpeg(d / "g.jpg", smooth(1, 9, 4, 0), 100);
  EXPECT_EQ(read_jpeg(d / "g.jpg").sizes(), (std::vector<int64_t>{3, 9, 4}));
}

TEST(DataTinyBad, CorruptJpeg) {
  TempDir d;
  write_tiny(d.path);
  const std::string f = d / "train/n02/images/n02_1.JPEG";
  std::string bytes = dr::util::read_file(f);
  write_bytes(f, bytes.substr(0, bytes.size() / 2));  // truncated
  auto m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "n02_1.JPEG");
  EXPECT_HAS(m, "corrupt JPEG");
  write_bytes(f, "this is not a JPEG file at all");
  m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "n02_1.JPEG");
  EXPECT_HAS(m, "corrupt JPEG");
  write_bytes(f, "");
  m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "n02_1.JPEG");
  EXPECT_HAS(m, "empty");
  m = data_error([&] { read_jpeg(f); });
  EXPECT_HAS(m, "n02_1.JPEG");
}

TEST(DataTinyBad, WrongSizeJpeg) {
  TempDir d;
  write_tiny(d.path);
  write_jpeg(d / "val/images/val_1.JPEG", smooth(3, 32, 32, 0), 90);
  auto m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "val_1.JPEG");
  EXPECT_HAS(m, "expected 64x64");
}

TEST(DataTinyBad, AnnotationsAndMissingFiles) {
  TempDir d;
  write_tiny(d.path);
  write_bytes(d / "val/val_annotations.txt", "val_0.JPEG\tn02\t0\t0\t63\t63\nval_1.JPEG\tn99\t0\t0\t63\t63\n");
  auto m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "val_annotations.txt");
  EXPECT_HAS(m, "n99");
  write_bytes(d / "val/val_annotations.txt", "val_0.JPEG\tn02\nval_7.JPEG\tn01\n");
  m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "val_7.JPEG");
  EXPECT_HAS(m, "not found");
  fs::remove(d / "val/val_annotations.txt");
  m = data_error([&] { load_dataset("tinyimagenet:" + d.path); });
  EXPECT_HAS(m, "val_annotations.txt");
  m = data_error([&] { load_dataset("tinyimagenet:" + d / "nothing"); });
  EXPECT_HAS(m, "train");
  EXPECT_HAS(m, "not found");
}

// ----------------------------------------------------------- synthetic --
TEST(DataSynthetic, DefaultsAndDeterminism) {
  auto a = load_dataset("synthetic"), b = load_dataset("synthetic");
  EXPECT_EQ(a.train.name, "synthetic");
  EXPECT_EQ(a.train.classes, 10);
  EXPECT_EQ(a.train.images.sizes(), (std::vector<int64_t>{512, 3, 32, 32}));
  EXPECT_EQ(a.test.images.sizes(), (std::vector<int64_t>{128, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(a.train.images, b.train.images));
  EXPECT_TRUE(torch::equal(a.test.images, b.test.images));
  EXPECT_TRUE(torch::equal(a.train.labels, b.train.labels));
  EXPECT_FALSE(torch::equal(a.train.images.slice(0, 0, 128), a.test.images));
  EXPECT_EQ(std::get<0>(torch::_unique(a.train.labels)).numel(), 10);
  auto l = load_dataset("synthetic", 100);
  EXPECT_EQ(l.train.size(), 100);
  EXPECT_EQ(l.test.size(), 100);
  EXPECT_TRUE(torch::equal(l.train.images, a.train.images.slice(0, 0, 100)));
  auto c = load_dataset("synthetic:1x16x12:4:64");
  EXPECT_EQ(c.train.images.sizes(), (std::vector<int64_t>{64, 1, 16, 12}));
  EXPECT_EQ(c.test.size(), 16);
  EXPECT_EQ(c.train.classes, 4);
  EXPECT_EQ(c.train.labels.max().item<int64_t>(), 3);
}

TEST(DataSynthetic, Learnable) {
  // A nearest-class-mean classifier already separates the test split, so a
  // small network learns it quickly.
  for (const char* src : {"synthetic", "synthetic:1x28x28:10:512"}) {
    auto s = load_dataset(src);
    auto x = s.train.images.to(torch::kFloat).flatten(1);
    auto means = torch::zeros({s.train.classes, x.size(1)});
    for (int64_t k = 0; k < s.train.classes; ++k) means[k] = x.index({s.train.labels == k}).mean(0);
    auto xt = s.test.images.to(torch::kFloat).flatten(1);
    auto pred = torch::cdist(xt, means).argmin(1);
    const double acc = pred.eq(s.test.labels).to(torch::kFloat).mean().item<double>();
    EXPECT_GT(acc, 0.95) << src;
  }
}

TEST(DataSynthetic, BadSources) {
  EXPECT_HAS(data_error([] { load_dataset("synthetic:3x32"); }), "CxHxW");
  EXPECT_HAS(data_error([] { load_dataset("synthetic:0x32x32"); }), "outside");
  EXPECT_HAS(data_error([] { load_dataset("synthetic:3x32x32:ten"); }), "not a number");
  auto m = data_error([] { load_dataset("imagenet:/x"); });
  EXPECT_HAS(m, "unknown dataset");
  EXPECT_HAS(m, "fashion-mnist");
  EXPECT_EQ(dr::arch::dataset_names().size(), 5u);
}

// -------------------------------------------------------------- loader --
// Labels are the image indices, so batches can be traced back.
Dataset indexed(int64_t n, int64_t c = 3, int64_t h = 8, int64_t w = 8) {
  Dataset d;
  d.name = "indexed";
  d.images = rand_u8({n, c, h, w}, 99);
  d.labels = torch::arange(n, torch::kInt64);
  d.classes = n;
  compute_mean_std(d);
  return d;
}

std::vector<std::pair<torch::Tensor, torch::Tensor>> epoch_batches(Batches& l, int64_t epoch) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  l.start_epoch(epoch);
  torch::Tensor x, y;
  while (l.next(x, y)) out.emplace_back(x, y);
  return out;
}

// Skipping into epoch 1, running out, and restarting mid-epoch, against
// epoch 1's batches `all` (of the same options); either source.
void expect_skip_and_restart(Batches& l, const std::vector<std::pair<torch::Tensor, torch::Tensor>>& all) {
  l.start_epoch(1);
  EXPECT_EQ(l.skip_batches(3), 3);
  torch::Tensor x, y;
  ASSERT_TRUE(l.next(x, y));
  EXPECT_TRUE(torch::equal(x, all[3].first));
  EXPECT_EQ(l.skip_batches(100), int64_t(all.size()) - 4);
  EXPECT_FALSE(l.next(x, y));
  l.start_epoch(0);
  ASSERT_TRUE(l.next(x, y));
  l.start_epoch(1);  // restart mid-epoch
  ASSERT_TRUE(l.next(x, y));
  EXPECT_TRUE(torch::equal(x, all[0].first));
}

TEST(DataLoader, ShapesAndCoverage) {
  auto d = indexed(100);
  LoaderOptions o;
  o.batch = 32;
  BatchLoader l(d, o);
  EXPECT_EQ(l.batches_per_epoch(), 4);
  auto b = epoch_batches(l, 0);
  ASSERT_EQ(b.size(), 4u);
  std::vector<int64_t> sizes, seen;
  for (auto& [x, y] : b) {
    EXPECT_EQ(x.scalar_type(), torch::kFloat32);
    EXPECT_EQ(y.scalar_type(), torch::kInt64);
    EXPECT_TRUE(x.is_contiguous());
    EXPECT_EQ(x.sizes().slice(1), (std::vector<int64_t>{3, 8, 8}));
    EXPECT_EQ(x.size(0), y.size(0));
    sizes.push_back(x.size(0));
    for (int64_t i = 0; i < y.size(0); ++i) seen.push_back(y[i].item<int64_t>());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{32, 32, 32, 4}));
  std::vector<int64_t> shuffled = seen;
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(100);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(seen, all);
  EXPECT_NE(shuffled, all);
  torch::Tensor x, y;
  EXPECT_FALSE(l.next(x, y));
  EXPECT_FALSE(l.next(x, y));

  o.drop_last = true;
  BatchLoader ld(d, o);
  EXPECT_EQ(ld.batches_per_epoch(), 3);
  EXPECT_EQ(epoch_batches(ld, 0).size(), 3u);
}

std::vector<int64_t> order(BatchLoader& l, int64_t epoch) {
  std::vector<int64_t> out;
  for (auto& [x, y] : epoch_batches(l, epoch))
    for (int64_t i = 0; i < y.size(0); ++i) out.push_back(y[i].item<int64_t>());
  return out;
}

TEST(DataLoader, PermutationDependsOnSeedAndEpoch) {
  auto d = indexed(64);
  LoaderOptions o;
  o.batch = 16;
  o.seed = 7;
  BatchLoader a(d, o), b(d, o);
  auto a3 = order(a, 3);
  EXPECT_EQ(a3, order(b, 3));
  EXPECT_NE(a3, order(a, 4));
  EXPECT_EQ(a3, order(a, 3));  // restarting an epoch repeats it
  o.seed = 8;
  BatchLoader c(d, o);
  EXPECT_NE(a3, order(c, 3));
  o.train = false;
  BatchLoader e(d, o);
  std::vector<int64_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(order(e, 5), all);
}

TEST(DataLoader, SameResultWhateverTheWorkers) {
  auto d = indexed(90, 3, 12, 12);
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> runs;
  for (int w : {0, 1, 2, 3}) {
    LoaderOptions o;
    o.batch = 16;
    o.seed = 3;
    o.workers = w;
    o.prefetch = w == 3 ? 2 : 4;
    BatchLoader l(d, o);
    auto e0 = epoch_batches(l, 0), e1 = epoch_batches(l, 1);
    e0.insert(e0.end(), e1.begin(), e1.end());
    runs.push_back(e0);
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_TRUE(torch::equal(runs[r][i].first, runs[0][i].first)) << "workers run " << r << " batch " << i;
      EXPECT_TRUE(torch::equal(runs[r][i].second, runs[0][i].second));
    }
  }
}

TEST(DataLoader, RankSlicesConcatenateToTheGlobalBatch) {
  for (int64_t n : {100, 98}) {  // last batch of 4 and of 2 images
    auto d = indexed(n);
    LoaderOptions o;
    o.batch = 32;
    o.seed = 11;
    BatchLoader whole(d, o);
    auto ref = epoch_batches(whole, 2);
    for (int world : {2, 4}) {
      std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> parts;
      for (int r = 0; r < world; ++r) {
        LoaderOptions p = o;
        p.world = world;
        p.rank = r;
        p.workers = r % 2;
        BatchLoader l(d, p);
        EXPECT_EQ(l.batches_per_epoch(), whole.batches_per_epoch());
        parts.push_back(epoch_batches(l, 2));
        ASSERT_EQ(parts.back().size(), ref.size());
      }
      for (size_t i = 0; i < ref.size(); ++i) {
        std::vector<torch::Tensor> xs, ys;
        for (int r = 0; r < world; ++r) {
          if (i + 1 < ref.size()) {
            EXPECT_EQ(parts[r][i].first.size(0), 32 / world);
          }
          EXPECT_EQ(parts[r][i].first.dim(), 4);
          xs.push_back(parts[r][i].first);
          ys.push_back(parts[r][i].second);
        }
        EXPECT_TRUE(torch::equal(torch::cat(xs), ref[i].first)) << "n " << n << " world " << world << " batch " << i;
        EXPECT_TRUE(torch::equal(torch::cat(ys), ref[i].second));
      }
    }
  }
  auto d = indexed(10);
  LoaderOptions o;
  o.batch = 10;
  o.world = 4;
  EXPECT_THROW(BatchLoader(d, o), std::invalid_argument);
}

TEST(DataLoader, AugmentationIsAReflectPaddedCropMaybeFlipped) {
  auto d = indexed(16, 3, 8, 8);
  LoaderOptions o;
  o.batch = 16;
  o.pad = 2;
  auto mean = torch::tensor(d.mean).view({1, 3, 1, 1}), sd = torch::tensor(d.std).view({1, 3, 1, 1});
  auto norm = (d.images.to(torch::kFloat) / 255.0 - mean) / sd;
  namespace F = torch::nn::functional;
  auto padded = F::pad(norm, F::PadFuncOptions({2, 2, 2, 2}).mode(torch::kReflect));
  std::set<int> variants;
  BatchLoader l(d, o);
  for (int64_t e = 0; e < 4; ++e)
    for (auto& [x, y] : epoch_batches(l, e))
      for (int64_t i = 0; i < x.size(0); ++i) {
        const int64_t idx = y[i].item<int64_t>();
        int found = -1;
        for (int oy = 0; oy <= 4 && found < 0; ++oy)
          for (int ox = 0; ox <= 4 && found < 0; ++ox)
            for (int f = 0; f < 2 && found < 0; ++f) {
              auto crop = padded[idx].slice(1, oy, oy + 8).slice(2, ox, ox + 8);
              if (f) crop = crop.flip({2});
              if (torch::allclose(crop, x[i], 1e-5, 1e-5)) found = (oy * 5 + ox) * 2 + f;
            }
        EXPECT_GE(found, 0) << "epoch " << e << " image " << idx;
        variants.insert(found);
      }
  EXPECT_GT(variants.size(), 20u);  // offsets and flips do vary
}

TEST(DataLoader, EvalPathIsNormalisedInOrder) {
  auto s = load_dataset("synthetic", 200);
  LoaderOptions o;
  o.batch = 64;
  o.train = false;
  BatchLoader l(s.train, o);
  std::vector<torch::Tensor> xs, ys;
  for (auto& [x, y] : epoch_batches(l, 0)) xs.push_back(x), ys.push_back(y);
  auto x = torch::cat(xs), y = torch::cat(ys);
  EXPECT_TRUE(torch::equal(y, s.train.labels));
  auto m = x.mean({0, 2, 3}), sd = x.std({0, 2, 3}, false);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(m[c].item<float>(), 0.f, 1e-3);
    EXPECT_NEAR(sd[c].item<float>(), 1.f, 1e-3);
  }
  auto expect = (s.train.images.to(torch::kFloat) / 255.0 - torch::tensor(s.train.mean).view({1, 3, 1, 1})) /
                torch::tensor(s.train.std).view({1, 3, 1, 1});
  EXPECT_TRUE(torch::allclose(x, expect, 1e-5, 1e-5));
}

TEST(DataLoader, SkipRestartAndEarlyDestruction) {
  auto d = indexed(200);
  LoaderOptions o;
  o.batch = 16;
  o.workers = 2;
  BatchLoader ref(d, o);
  BatchLoader l(d, o);
  expect_skip_and_restart(l, epoch_batches(ref, 1));
  torch::Tensor x, y;
  {
    BatchLoader early(d, o);
    ASSERT_TRUE(early.next(x, y));  // implicit epoch 0, then destroyed mid-epoch
  }
}

// ------------------------------------------------------ device batches --
// The device-resident source gives the host loader's batches bit for bit:
// same order, crops, flips, normalisation, rank slices and short last batch.
void expect_same_batches(const Dataset& d, const LoaderOptions& o, int64_t epoch, const std::string& what) {
  BatchLoader host(d, o);
  DeviceBatches device(d, o, torch::kCPU);
  EXPECT_EQ(device.batches_per_epoch(), host.batches_per_epoch()) << what;
  const auto a = epoch_batches(host, epoch), b = epoch_batches(device, epoch);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].first.sizes(), a[i].first.sizes()) << what << " batch " << i;
    EXPECT_EQ(b[i].first.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(b[i].first, a[i].first)) << what << " batch " << i;
    EXPECT_TRUE(torch::equal(b[i].second, a[i].second)) << what << " batch " << i;
  }
}

TEST(DeviceBatches, SameBatchesAsTheHostLoader) {
  struct Case {
    int64_t n, c, h, w;
    int pad;
    bool flip, train;
    int64_t batch;
    int world, rank;
  };
  const std::vector<Case> cases = {
      {100, 3, 8, 8, 2, true, true, 32, 1, 0},    // short last batch
      {64, 1, 28, 28, 4, true, true, 16, 1, 0},   // Fashion-MNIST's shape
      {50, 5, 7, 9, 3, true, true, 8, 1, 0},      // 5 channels, H != W
      {40, 3, 1, 6, 2, true, true, 8, 1, 0},      // one row: reflect in a line of 1
      {40, 3, 6, 6, 0, true, true, 8, 1, 0},      // flip only
      {40, 3, 6, 6, 5, false, true, 8, 1, 0},     // crop only, pad near the size
      {40, 3, 6, 6, 2, true, false, 16, 1, 0},    // test batches: no shuffle, no augmentation
      {98, 3, 8, 8, 2, true, true, 32, 4, 1},     // a rank's slices; last slice empty
      {98, 3, 8, 8, 2, true, true, 32, 4, 3},
  };
  for (const Case& k : cases) {
    const Dataset d = indexed(k.n, k.c, k.h, k.w);
    LoaderOptions o;
    o.batch = k.batch, o.pad = k.pad, o.flip = k.flip, o.train = k.train, o.seed = 5;
    o.world = k.world, o.rank = k.rank, o.workers = 1;
    for (int64_t epoch : {0, 3})
      expect_same_batches(d, o, epoch,
                          std::to_string(k.c) + "x" + std::to_string(k.h) + "x" + std::to_string(k.w) + " pad " +
                              std::to_string(k.pad) + " epoch " + std::to_string(epoch) + " rank " +
                              std::to_string(k.rank) + "/" + std::to_string(k.world));
  }
}

TEST(DeviceBatches, SkipRestartAndChecks) {
  auto d = indexed(200);
  LoaderOptions o;
  o.batch = 16;
  BatchLoader ref(d, o);
  DeviceBatches l(d, o, torch::kCPU);
  expect_skip_and_restart(l, epoch_batches(ref, 1));
  torch::Tensor x, y;
  DeviceBatches implicit(d, o, torch::kCPU);  // next() without start_epoch() is epoch 0
  ASSERT_TRUE(implicit.next(x, y));
  EXPECT_TRUE(torch::equal(x, epoch_batches(ref, 0)[0].first));

  o.world = 3;  // 16 images cannot be cut into 3 equal slices
  EXPECT_THROW(DeviceBatches(d, o, torch::kCPU), std::invalid_argument);
  Dataset bad = d;
  bad.images = bad.images.to(torch::kFloat32);
  EXPECT_THROW(DeviceBatches(bad, LoaderOptions{}, torch::kCPU), std::invalid_argument);
}

TEST(DeviceBatches, WhereBatchesAreMade) {
  auto d = indexed(10);
  EXPECT_EQ(batches_kind(d, "auto"), "device");
  EXPECT_EQ(batches_kind(d, "host"), "host");
  EXPECT_EQ(batches_kind(d, "device"), "device");
  LoaderOptions o;
  EXPECT_NE(dynamic_cast<DeviceBatches*>(make_batches(d, o, torch::kCPU, "auto").get()), nullptr);
  EXPECT_NE(dynamic_cast<BatchLoader*>(make_batches(d, o, torch::kCPU, "host").get()), nullptr);
  try {
    make_batches(d, o, torch::kCPU, "gpu");
    ADD_FAILURE() << "'gpu' accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("accepted: auto, device, host"), std::string::npos) << e.what();
  }
  // Above the line the split stays on the host (a view: no 4 GiB allocated).
  Dataset big = d;
  big.images = torch::empty({1}, torch::kUInt8).expand({(int64_t{1} << 20) + 1, 64, 8, 8});
  EXPECT_EQ(batches_kind(big, "auto"), "host");
}

}  // namespace
