#include "data/loader.h"

#include <atomic>
#include <numeric>
#include <tuple>

#include "data/rng.h"
#include "kernels/base/error.h"

namespace mq {
namespace {
constexpr uint64_t kShuffleStream = 0x5348554646ull;  // "SHUFF"
constexpr uint64_t kAugmentStream = 0x4155474dull;    // "AUGM"
}  // namespace

DataLoader::DataLoader(const Dataset& data, LoaderOptions options)
    : data_(&data), options_(std::move(options)), table_(options_.normalization, data.channels) {
  data_->validate();
  MQ_CHECK(options_.batch > 0, "DataLoader: batch size must be positive");
  MQ_CHECK(data_->size() > 0, "DataLoader: dataset '{}' is empty", data_->name);
  MQ_CHECK(!options_.augment || options_.augmentation.pad >= 0,
           "DataLoader: crop padding {} must be >= 0", options_.augmentation.pad);
  const size_t n = data_->size();
  batches_ = options_.drop_last ? n / options_.batch : (n + options_.batch - 1) / options_.batch;
  MQ_CHECK(batches_ > 0, "DataLoader: drop_last with batch {} > {} samples leaves no batch",
           options_.batch, n);
  MQ_CHECK(options_.parts >= 1 && options_.part >= 0 && options_.part < options_.parts,
           "DataLoader: part {} of {} parts", options_.part, options_.parts);
  if (options_.prefetch == 0) options_.prefetch = 1;
  if (options_.background) worker_ = std::thread([this] { worker_loop(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard lk(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::shared_ptr<const std::vector<size_t>> DataLoader::make_order(int epoch) const {
  auto order = std::make_shared<std::vector<size_t>>(data_->size());
  std::iota(order->begin(), order->end(), size_t{0});
  if (options_.shuffle) {
    DataRng rng(mix_keys(options_.seed, static_cast<uint64_t>(epoch), kShuffleStream));
    for (size_t i = order->size() - 1; i > 0; --i) std::swap((*order)[i], (*order)[rng.below(i + 1)]);
  }
  return order;
}

Batch DataLoader::build(const std::vector<size_t>& order, int epoch, size_t b) const {
  const Dataset& d = *data_;
  const size_t whole_begin = b * options_.batch;
  const size_t whole = std::min(whole_begin + options_.batch, order.size()) - whole_begin;
  const size_t parts = static_cast<size_t>(options_.parts), part = static_cast<size_t>(options_.part);
  const size_t begin = whole_begin + whole * part / parts;
  const size_t end = whole_begin + whole * (part + 1) / parts;
  const size_t n = end - begin;
  const size_t bytes = d.image_bytes();
  const size_t plane = static_cast<size_t>(d.height) * d.width;
  Batch batch;
  batch.index = b;
  batch.epoch = epoch;
  batch.global_size = whole;
  batch.indices.assign(order.begin() + begin, order.begin() + end);
  std::tie(batch.images, batch.labels) = acquire(n);
  float* images = batch.images.data<float>();
  int64_t* labels = batch.labels.data<int64_t>();
  std::vector<uint8_t> scratch(options_.augment ? bytes : 0);
  for (size_t j = 0; j < n; ++j) {
    const size_t idx = batch.indices[j];
    const uint8_t* src = d.image(idx);
    if (options_.augment) {
      DataRng rng(mix_keys(options_.seed, mix_keys(static_cast<uint64_t>(epoch), idx),
                           kAugmentStream));
      augment_image(src, scratch.data(), d.channels, d.height, d.width,
                    draw_augment(rng, options_.augmentation));
      src = scratch.data();
    }
    table_.apply(src, images + j * bytes, plane);
    labels[j] = d.labels[idx];
  }
  return batch;
}

std::pair<Tensor, Tensor> DataLoader::acquire(size_t n) const {
  const Dataset& d = *data_;
  const Shape shape{static_cast<int64_t>(n), d.channels, d.height, d.width};
  // The pool keeps one handle per buffer; callers get fresh handles (no autograd state carried
  // over) sharing the storage, so a buffer is free when only the pool's handle refers to it.
  auto unused = [](const Tensor& t) { return t.impl().storage.use_count() == 1; };
  auto handle = [](const Tensor& t) {
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = t.impl().storage;
    impl->offset = t.impl().offset;
    impl->shape = t.impl().shape;
    impl->dtype = t.impl().dtype;
    return Tensor(std::move(impl));
  };
  {
    std::lock_guard lk(pool_mutex_);
    for (auto& [images, labels] : pool_) {
      if (images.shape() != shape || !unused(images) || !unused(labels)) continue;
      // Pairs with the release in the last holder's reference drop: its reads of the old
      // contents happen before our writes.
      std::atomic_thread_fence(std::memory_order_acquire);
      return {handle(images), handle(labels)};
    }
  }
  Tensor images = Tensor::empty(shape, DType::f32);
  Tensor labels = Tensor::empty({static_cast<int64_t>(n)}, DType::i64);
  std::lock_guard lk(pool_mutex_);
  if (pool_.size() < options_.prefetch + 4) {
    pool_.emplace_back(images, labels);
    return {handle(images), handle(labels)};
  }
  return {images, labels};
}

Batch DataLoader::make_batch(int epoch, size_t b) const {
  MQ_CHECK(b < batches_, "DataLoader::make_batch: batch {} of an epoch with {} batches", b,
           batches_);
  return build(*make_order(epoch), epoch, b);
}

void DataLoader::start_epoch(int epoch) {
  auto order = make_order(epoch);
  {
    std::lock_guard lk(mutex_);
    started_ = true;
    epoch_ = epoch;
    ++generation_;
    order_ = std::move(order);
    next_to_make_ = 0;
    next_to_take_ = 0;
    ready_.clear();
  }
  cv_.notify_all();
}

bool DataLoader::next(Batch& batch) {
  if (!started_) start_epoch(0);
  std::unique_lock lk(mutex_);
  if (next_to_take_ >= batches_) return false;
  if (!options_.background) {
    const size_t b = next_to_take_++;
    auto order = order_;
    const int epoch = epoch_;
    lk.unlock();
    batch = build(*order, epoch, b);
    return true;
  }
  cv_.wait(lk, [&] { return !ready_.empty(); });
  Ready item = std::move(ready_.front());
  ready_.pop_front();
  ++next_to_take_;
  lk.unlock();
  cv_.notify_all();  // room for the worker to prepare the following batch
  if (item.error) std::rethrow_exception(item.error);
  batch = std::move(item.batch);
  return true;
}

void DataLoader::worker_loop() {
  std::unique_lock lk(mutex_);
  while (true) {
    cv_.wait(lk, [&] {
      return stop_ || (started_ && next_to_make_ < batches_ && ready_.size() < options_.prefetch);
    });
    if (stop_) return;
    const size_t b = next_to_make_++;
    const uint64_t generation = generation_;
    const int epoch = epoch_;
    auto order = order_;
    lk.unlock();
    Ready item;
    try {
      item.batch = build(*order, epoch, b);
    } catch (...) {
      item.error = std::current_exception();
    }
    lk.lock();
    if (generation != generation_) continue;  // the epoch was restarted meanwhile: discard
    ready_.push_back(std::move(item));
    cv_.notify_all();
  }
}

}  // namespace mq
