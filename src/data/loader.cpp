// BatchLoader: shuffling, reflect-pad random crop + flip, normalisation, all
// in plain loops from uint8 into one freshly allocated float tensor per batch,
// prepared ahead on worker threads. Randomness is a pure function of
// (seed, epoch, batch, position), so output does not depend on threading.

#include <algorithm>

#include "data/dataset.h"

namespace dr::data {

namespace {

uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t h = mix64(a ^ 0x243F6A8885A308D3ULL);
  h = mix64(h ^ b);
  h = mix64(h ^ c);
  return mix64(h ^ d);
}

struct Rng {
  uint64_t s;
  uint64_t next() { return s = mix64(s), s; }
  uint64_t below(uint64_t n) { return (next() >> 11) % n; }  // [0, n)
};

int reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n - 2;
  i %= period;
  if (i < 0) i += period;
  return static_cast<int>(i >= n ? period - i : i);
}

constexpr uint64_t kPermSalt = 0x7065726D;  // "perm"

}  // namespace

BatchLoader::BatchLoader(const Dataset& data, LoaderOptions opt) : data_(data), opt_(opt) {
  const std::string who = "BatchLoader(" + data.name + "): ";
  if (!data.images.defined() || data.images.dim() != 4 || data.images.scalar_type() != torch::kUInt8)
    throw std::invalid_argument(who + "images must be uint8 [N, C, H, W]");
  if (!data.labels.defined() || data.labels.numel() != data.images.size(0))
    throw std::invalid_argument(who + "images/labels count mismatch");
  if (opt_.batch < 1) throw std::invalid_argument(who + "batch must be >= 1");
  if (opt_.world < 1 || opt_.rank < 0 || opt_.rank >= opt_.world)
    throw std::invalid_argument(who + "need 0 <= rank < world");
  if (opt_.batch % opt_.world != 0)
    throw std::invalid_argument(who + "batch " + std::to_string(opt_.batch) + " is not divisible by world " +
                                std::to_string(opt_.world));
  if (opt_.pad < 0) throw std::invalid_argument(who + "pad must be >= 0");
  opt_.workers = std::max(0, opt_.workers);
  opt_.prefetch = std::max(1, opt_.prefetch);
  data_.images = data.images.contiguous().cpu();
  data_.labels = data.labels.to(torch::kInt64).contiguous().cpu();
  const int64_t C = data_.images.size(1);
  if (data_.mean.empty() && data_.std.empty()) compute_mean_std(data_);
  if (static_cast<int64_t>(data_.mean.size()) != C || static_cast<int64_t>(data_.std.size()) != C)
    throw std::invalid_argument(who + "mean/std must have one value per channel");
  for (int64_t c = 0; c < C; ++c) {
    float* lut = C <= 4 ? lut_[c] : nullptr;
    if (!lut) {
      lut_big_.emplace_back(256);
      lut = lut_big_.back().data();
    }
    const float sd = data_.std[c] != 0.f ? data_.std[c] : 1.f;
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) / 255.f - data_.mean[c]) / sd;
  }
  n_ = data_.images.size(0);
  batches_ = opt_.drop_last ? n_ / opt_.batch : (n_ + opt_.batch - 1) / opt_.batch;
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
  auto perm = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) (*perm)[i] = i;
  if (opt_.train) {
    Rng rng{hash(opt_.seed, static_cast<uint64_t>(epoch), kPermSalt, 0)};
    for (int64_t i = n_ - 1; i > 0; --i) std::swap((*perm)[i], (*perm)[rng.below(static_cast<uint64_t>(i) + 1)]);
  }
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
  out.images = torch::empty({B, C, H, W}, torch::kFloat32);
  out.labels = torch::empty({B}, torch::kInt64);
  float* dst = out.images.data_ptr<float>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  const uint8_t* src_all = data_.images.data_ptr<uint8_t>();
  const int64_t* lab_all = data_.labels.data_ptr<int64_t>();
  std::vector<int> xs(static_cast<size_t>(W)), ys(static_cast<size_t>(H));
  std::vector<const float*> luts(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) luts[c] = C <= 4 ? lut_[c] : lut_big_[c].data();
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
    Rng rng{hash(opt_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(k), static_cast<uint64_t>(j))};
    const int64_t span = 2 * static_cast<int64_t>(opt_.pad) + 1;
    const int64_t ox = static_cast<int64_t>(rng.below(span)) - opt_.pad;
    const int64_t oy = static_cast<int64_t>(rng.below(span)) - opt_.pad;
    const bool flip = opt_.flip && (rng.next() >> 63);
    for (int64_t x = 0; x < W; ++x) xs[x] = reflect((flip ? W - 1 - x : x) + ox, W);
    for (int64_t y = 0; y < H; ++y) ys[y] = reflect(y + oy, H);
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
