// DataLoader: mini-batches of a Dataset, shuffled per epoch, like torch.utils.data.DataLoader.
//
//   auto train = ctnn::io::load_fashion_mnist(ctnn::io::fashion_mnist_dir(), true);
//   ctnn::io::DataLoader loader(train, /*batch_size=*/256, /*shuffle=*/true, /*seed=*/0);
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (auto [X, y] : loader) {   // X: ConstBatchView<Shape<1, 28, 28>>, y: span<const int64_t>
//       ...
//     }
//
// Each begin() starts a new epoch: with shuffle on, the order is a Fisher-Yates permutation drawn
// from a ctnn::Generator seeded from (seed, epoch number), so it is the same on every compiler and
// standard library, and the same for the same seed whatever happened before.
// The loader gathers a batch into buffers it owns, allocated once in the constructor: iterating
// allocates nothing. A yielded batch is therefore valid only until the next batch is produced
// (copy it to keep it). Without shuffle (and unsharded) the batches are views straight into the
// dataset.
//
// Sharded (data-parallel training, docs/distributed.md), as torch's DistributedSampler:
//   DataLoader loader(train, B / w, true, seed, false, DistributedSampler{.num_replicas = w, .rank = r});
// every rank draws the same permutation (same seed and epoch; set_epoch(e) as
// DistributedSampler.set_epoch), pads it to a multiple of w by repeating its first indices, and
// takes indices[r::w]: ceil(n / w) samples on every rank. Rank r's k-th batch of b is then
// indices[kwb + r + w j] for j < b, so the ranks' k-th batches together are indices[kB, kB + B)
// with B = w b: the k-th batch of DataLoader(train, B, true, seed) (unsharded, same epoch),
// except that when w does not divide n the last one also holds the padding's repeats.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctnn/core/random.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/io/idx.hpp"

namespace ctnn::io {

/// One mini-batch: `auto [X, y] = batch;` X is [n, *S], y holds the n labels.
template <class S>
struct LoaderBatch {
  ConstBatchView<S> X;
  std::span<const std::int64_t> y;

  ConstBatchView<S> images() const { return X; }
  std::span<const std::int64_t> labels() const { return y; }
  std::size_t size() const { return y.size(); }
};

/// torch.utils.data.distributed.DistributedSampler(dataset, num_replicas, rank): the part of
/// every epoch a rank loads (the default: the whole epoch).
struct DistributedSampler {
  std::size_t num_replicas = 1;  // world_size
  std::size_t rank = 0;          // 0 <= rank < num_replicas
};

template <class S>
class DataLoader {
 public:
  using batch_type = LoaderBatch<S>;

  /// torch.utils.data.DataLoader(dataset, batch_size, shuffle, drop_last=drop_last) with a
  /// generator seeded by `seed`. Keeps a pointer to `dataset`, which must outlive the loader.
  DataLoader(const Dataset<S>& dataset, std::size_t batch_size, bool shuffle = false, std::uint64_t seed = 0,
             bool drop_last = false)
      : DataLoader(dataset, batch_size, shuffle, seed, drop_last, DistributedSampler{}) {}
  /// DataLoader(dataset, batch_size, sampler=DistributedSampler(dataset, num_replicas, rank,
  /// shuffle, seed), drop_last=drop_last): this rank's ceil(n / num_replicas) samples of each epoch.
  DataLoader(const Dataset<S>& dataset, std::size_t batch_size, bool shuffle, std::uint64_t seed, bool drop_last,
             DistributedSampler sampler)
      : dataset_(&dataset), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed),
        replicas_(sampler.num_replicas), rank_(sampler.rank) {
    if (batch_size == 0) throw std::invalid_argument("ctnn::io::DataLoader: batch_size must be positive");
    if (replicas_ == 0) throw std::invalid_argument("ctnn::io::DataLoader: num_replicas must be positive");
    if (rank_ >= replicas_)
      throw std::invalid_argument("ctnn::io::DataLoader: invalid rank " + std::to_string(rank_) +
                                  ", rank should be in the interval [0, " + std::to_string(replicas_ - 1) + "]");
    if (dataset.images.batch_size() != dataset.labels.size())
      throw std::invalid_argument("ctnn::io::DataLoader: the dataset has " +
                                  std::to_string(dataset.images.batch_size()) + " samples but " +
                                  std::to_string(dataset.labels.size()) + " labels");
    if (shuffle_ || replicas_ > 1) {
      const std::size_t buffered = std::min(batch_size_, num_samples());
      images_ = Batch<S>(buffered);
      labels_.resize(buffered);
      order_.resize(dataset.size());
      std::iota(order_.begin(), order_.end(), std::size_t{0});
    }
  }
  /// A loader must not outlive its dataset: binding one to a temporary is an error.
  DataLoader(const Dataset<S>&&, std::size_t, bool = false, std::uint64_t = 0, bool = false) = delete;
  DataLoader(const Dataset<S>&&, std::size_t, bool, std::uint64_t, bool, DistributedSampler) = delete;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = batch_type;
    using reference = batch_type;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    batch_type operator*() const { return loader_->batch(index_); }
    iterator& operator++() {
      ++index_;
      return *this;
    }
    void operator++(int) { ++index_; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.index_ == b.index_; }

   private:
    friend class DataLoader;
    iterator(DataLoader* loader, std::size_t index) : loader_(loader), index_(index) {}
    DataLoader* loader_ = nullptr;
    std::size_t index_ = 0;
  };

  /// Starts a new epoch (reshuffling when shuffle is on) and returns its first batch.
  iterator begin() {
    start_epoch();
    return iterator(this, 0);
  }
  iterator end() { return iterator(this, size()); }

  /// len(loader): the number of batches per epoch.
  std::size_t size() const {
    const std::size_t n = num_samples();
    return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }
  std::size_t dataset_size() const { return dataset_->size(); }
  std::size_t batch_size() const { return batch_size_; }
  bool shuffle() const { return shuffle_; }
  bool drop_last() const { return drop_last_; }
  /// Epochs started so far (begin() calls); the current epoch is epoch() - 1.
  std::uint64_t epoch() const { return epochs_started_; }
  /// DistributedSampler.set_epoch(e): the next begin() starts epoch e (its permutation is drawn
  /// from (seed, e)), so every rank that sets the same e shuffles alike.
  void set_epoch(std::uint64_t e) { epochs_started_ = e; }
  /// The samples this loader yields per epoch: len(sampler), ceil(n / num_replicas) (n unsharded).
  std::size_t num_samples() const { return (dataset_->size() + replicas_ - 1) / replicas_; }
  std::size_t num_replicas() const { return replicas_; }
  std::size_t rank() const { return rank_; }

  /// Batch i of the current epoch (0 <= i < size()); valid until the next batch is produced.
  batch_type batch(std::size_t i) {
    const std::size_t first = i * batch_size_;
    const std::size_t count = std::min(batch_size_, num_samples() - first);
    if (!shuffle_ && replicas_ == 1) {
      return {ConstBatchView<S>(dataset_->images.data() + first * S::size, count),
              std::span<const std::int64_t>(dataset_->labels.data() + first, count)};
    }
    const float* src = dataset_->images.data();
    float* dst = images_.data();
    const std::size_t n = dataset_->size();
    for (std::size_t k = 0; k < count; ++k) {
      // sample p of this rank: index rank + p w of the epoch's order padded by repeating it
      const std::size_t j = order_[(rank_ + (first + k) * replicas_) % n];
      std::memcpy(dst + k * S::size, src + j * S::size, S::size * sizeof(float));
      labels_[k] = dataset_->labels[j];
    }
    return {ConstBatchView<S>(images_.data(), count), std::span<const std::int64_t>(labels_.data(), count)};
  }

 private:
  static std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  }
  /// 48 random bits from two 24-bit uniform draws (exact integers, identical on every platform).
  static std::uint64_t bits48(Generator& g) {
    const auto hi = static_cast<std::uint64_t>(g.uniform() * 0x1.0p24f);
    const auto lo = static_cast<std::uint64_t>(g.uniform() * 0x1.0p24f);
    return (hi << 24) | lo;
  }
  /// Uniform in [0, n) without bias, by rejection (std::uniform_int_distribution differs between
  /// standard libraries, so it is not used here).
  static std::size_t below(Generator& g, std::size_t n) {
    constexpr std::uint64_t range = std::uint64_t{1} << 48;
    const std::uint64_t limit = range - range % n;
    for (;;) {
      const std::uint64_t x = bits48(g);
      if (x < limit) return static_cast<std::size_t>(x % n);
    }
  }

  void start_epoch() {
    const std::uint64_t epoch = epochs_started_++;
    if (!shuffle_) return;
    gen_.manual_seed(splitmix64(seed_ ^ splitmix64(epoch)));
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[below(gen_, i)]);
  }

  const Dataset<S>* dataset_;
  std::size_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  std::uint64_t seed_;
  std::size_t replicas_ = 1, rank_ = 0;
  std::uint64_t epochs_started_ = 0;
  Generator gen_;
  Batch<S> images_;
  std::vector<std::int64_t> labels_;
  std::vector<std::size_t> order_;
};

}  // namespace ctnn::io
