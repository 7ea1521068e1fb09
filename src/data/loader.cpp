// BatchLoader: shuffling, reflect-pad random crop + flip, normalisation, all
// in plain loops from uint8 into one freshly allocated float tensor per batch,
// prepared ahead on worker threads. Randomness is a pure function of
// (seed, epoch, batch, position) (data/sampling.h), so output does not depend
// on threading and equals DeviceBatches'.

#include <algorithm>

#include "data/dataset.h"
#include "data/sampling.h"

namespace dr::data {

Dataset checked_for_batches(const Dataset& data, LoaderOptions& opt) {
  const std::string who = "batches of " + data.name + ": ";
  if (!data.images.defined() || data.images.dim() != 4 || data.images.scalar_type() != torch::kUInt8)
    throw std::invalid_argument(who + "images must be uint8 [N, C, H, W]");
  if (!data.labels.defined() || data.labels.numel() != data.images.size(0))
    throw std::invalid_argument(who + "images/labels count mismatch");
  if (opt.batch < 1) throw std::invalid_argument(who + "batch must be >= 1");
  if (opt.world < 1 || opt.rank < 0 || opt.rank >= opt.world)
    throw std::invalid_argument(who + "need 0 <= rank < world");
  if (opt.batch % opt.world != 0)
    throw std::invalid_argument(who + "batch " + std::to_string(opt.batch) + " is not divisible by world " +
                                std::to_string(opt.world));
  if (opt.pad < 0) throw std::invalid_argument(who + "pad must be >= 0");
  opt.workers = std::max(0, opt.workers);
  opt.prefetch = std::max(1, opt.prefetch);
  Dataset d = data;
  d.images = data.images.contiguous().cpu();
  d.labels = data.labels.to(torch::kInt64).contiguous().cpu();
  if (d.mean.empty() && d.std.empty()) compute_mean_std(d);
  if (static_cast<int64_t>(d.mean.size()) != d.channels() || static_cast<int64_t>(d.std.size()) != d.channels())
    throw std::invalid_argument(who + "mean/std must have one value per channel");
  return d;
}

int64_t batches_in(int64_t images, const LoaderOptions& opt) {
  return opt.drop_last ? images / opt.batch : (images + opt.batch - 1) / opt.batch;
}

BatchLoader::BatchLoader(const Dataset& data, LoaderOptions opt) : opt_(opt) {
  data_ = checked_for_batches(data, opt_);
  lut_ = normalisation_table(data_.mean, data_.std);
  n_ = data_.images.size(0);
  batches_ = batches_in(n_, opt_);
  for (int t = 0; t < opt_.workers; ++t) threads_.emplace_back([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() { stop_workers(); }

void BatchLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

int64_t BatchLoader::batches_per_epoch() const { return batches_; }

void BatchLoader::start_epoch(int64_t epoch) {
  auto perm = std::make_shared<const std::vector<int64_t>>(epoch_order(n_, opt_.train, opt_.seed, epoch));
  {
    std::lock_guard<std::mutex> lk(mu_);
    perm_ = std::move(perm);
    epoch_ = epoch;
    started_ = true;
    ++generation_;
    next_claim_ = next_consume_ = 0;
    ready_.clear();
  }
  cv_work_.notify_all();
}

void BatchLoader::make_batch(const std::vector<int64_t>& perm, int64_t epoch, int64_t k, Ready& out) const {
  const int64_t C = data_.images.size(1), H = data_.images.size(2), W = data_.images.size(3);
  const int64_t g0 = k * opt_.batch, gsize = std::min(opt_.batch, n_ - g0);
  const int64_t s0 = opt_.rank * gsize / opt_.world, s1 = (opt_.rank + 1) * gsize / opt_.world;
  const int64_t B = s1 - s0, plane = H * W, per = C * plane;
  out.images = torch::empty({B, C, H, W}, torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(opt_.pin));
  out.labels = torch::empty({B}, torch::TensorOptions().dtype(torch::kInt64).pinned_memory(opt_.pin));
  float* dst = out.images.data_ptr<float>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  const uint8_t* src_all = data_.images.data_ptr<uint8_t>();
  const int64_t* lab_all = data_.labels.data_ptr<int64_t>();
  std::vector<int64_t> xs(static_cast<size_t>(W)), ys(static_cast<size_t>(H));
  std::vector<const float*> luts(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) luts[c] = lut_.data() + c * 256;
  const bool augment = opt_.train && (opt_.pad > 0 || opt_.flip);
  for (int64_t j = s0; j < s1; ++j) {
    const int64_t idx = perm[g0 + j];
    lab[j - s0] = lab_all[idx];
    const uint8_t* src = src_all + idx * per;
    float* o = dst + (j - s0) * per;
    if (!augment) {
      for (int64_t c = 0; c < C; ++c) {
        const float* lut = luts[c];
        const uint8_t* s = src + c * plane;
        float* oc = o + c * plane;
        for (int64_t i = 0; i < plane; ++i) oc[i] = lut[s[i]];
      }
      continue;
    }
    const Crop crop = crop_of(opt_.seed, epoch, k, j, opt_.pad, opt_.flip);
    for (int64_t x = 0; x < W; ++x) xs[x] = reflect((crop.flip ? W - 1 - x : x) + crop.dx, W);
    for (int64_t y = 0; y < H; ++y) ys[y] = reflect(y + crop.dy, H);
    for (int64_t c = 0; c < C; ++c) {
      const float* lut = luts[c];
      const uint8_t* s = src + c * plane;
      float* oc = o + c * plane;
      for (int64_t y = 0; y < H; ++y) {
        const uint8_t* row = s + ys[y] * W;
        float* orow = oc + y * W;
        for (int64_t x = 0; x < W; ++x) orow[x] = lut[row[xs[x]]];
      }
    }
  }
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_work_.wait(lk, [&] {
      return stop_ || (started_ && next_claim_ < batches_ && next_claim_ < next_consume_ + opt_.prefetch);
    });
    if (stop_) return;
    const int64_t k = next_claim_++;
    const uint64_t gen = generation_;
    const int64_t epoch = epoch_;
    auto perm = perm_;
    lk.unlock();
    Ready r;
    try {
      make_batch(*perm, epoch, k, r);
    } catch (...) {
      r.error = std::current_exception();
    }
    lk.lock();
    if (gen == generation_ && k >= next_consume_) {
      ready_[k] = std::move(r);
      cv_ready_.notify_all();
    }
  }
}

bool BatchLoader::next(torch::Tensor& images, torch::Tensor& labels) {
  if (!started_) start_epoch(0);
  Ready r;
  if (opt_.workers == 0) {
    if (next_consume_ >= batches_) return false;
    make_batch(*perm_, epoch_, next_consume_++, r);
  } else {
    std::unique_lock<std::mutex> lk(mu_);
    if (next_consume_ >= batches_) return false;
    const int64_t k = next_consume_;
    cv_ready_.wait(lk, [&] { return ready_.count(k) > 0; });
    auto it = ready_.find(k);
    r = std::move(it->second);
    ready_.erase(it);
    ++next_consume_;
    lk.unlock();
    cv_work_.notify_all();
    if (r.error) std::rethrow_exception(r.error);
  }
  images = std::move(r.images);
  labels = std::move(r.labels);
  return true;
}

int64_t BatchLoader::skip_batches(int64_t n) {
  if (!started_) start_epoch(0);
  int64_t m = 0;
  {
    std::lock_guard<std::mutex> lk(mu_);
    m = std::clamp<int64_t>(n, 0, batches_ - next_consume_);
    next_consume_ += m;
    ready_.erase(ready_.begin(), ready_.lower_bound(next_consume_));
    next_claim_ = std::max(next_claim_, next_consume_);
  }
  cv_work_.notify_all();
  return m;
}

}  // namespace dr::data
