// How the slices of one batch, split across threads by Model, see each other: the slice context
// of the running thread (which samples it has, of how many), a barrier, and a sum over the whole
// batch of per-sample rows (what SyncBatchNorm's statistics are), the same numbers whatever the
// thread count.
//
// Model::forward and backward run each slice of a batch on its own thread; almost every layer
// computes a sample from that sample alone and needs none of this. BatchNorm in training mode
// normalizes with statistics over the whole batch: each slice writes one row per sample (its
// per-channel sums), all slices meet at the barrier, and every slice then adds all the batch's
// rows in sample order. One thread on the whole batch adds the same rows in the same order, so
// the result is bit-identical for any split. Dropout reads the context for its random stream:
// the model's seed, the forward's count and the sample's index in the whole batch.
//
// Outside a Model's forward/backward (a bound layer called directly) there is no context: the
// batch is one slice, and reduce_over_batch adds the rows as it makes them.
//
// Across processes (SyncBatchNorm, torch.nn.SyncBatchNorm): when ctnn::dist sets batch_group's
// allreduce_sum, each process holds part of the global batch, and reduce_over_batch's totals and
// whole_batch's count are summed over the processes as well (slice 0 alone calls it, between two
// barriers, so only one thread per process talks to MPI). Unset (the default, and always
// without <ctnn/distributed.hpp>), nothing here changes: one null test per call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <thread>

namespace ctnn::detail {

/// Thrown in the slices waiting at a barrier when another slice failed: the failure, not this,
/// is what the caller sees (Model rethrows the first real exception).
struct slice_aborted : std::exception {
  const char* what() const noexcept override { return "ctnn: another slice of the batch failed"; }
};

/// A barrier for the T tasks of one parallel_for (which run on T distinct threads). It spins
/// with yields: the slices of a batch arrive within microseconds of each other.
class SliceBarrier {
 public:
  SliceBarrier() = default;
  /// A copy is a fresh barrier (its state only means something during one parallel run).
  SliceBarrier(const SliceBarrier&) {}
  SliceBarrier& operator=(const SliceBarrier&) { return *this; }
  void reset(std::size_t count) {
    count_ = count;
    arrived_.store(0, std::memory_order_relaxed);
    aborted_.store(false, std::memory_order_relaxed);
  }
  void arrive_and_wait() {
    const std::uint64_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    while (generation_.load(std::memory_order_acquire) == gen) {
      if (aborted_.load(std::memory_order_acquire)) throw slice_aborted{};
      std::this_thread::yield();
    }
  }
  /// A slice failed: every slice waiting now or later throws slice_aborted.
  void abort() { aborted_.store(true, std::memory_order_release); }

 private:
  std::size_t count_ = 1;
  std::atomic<std::size_t> arrived_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> aborted_{false};
};

/// The process group whose processes each hold part of the batch (set by ctnn::dist, which
/// includes MPI; core/ only sees a function pointer).
struct BatchGroup {
  /// Sums k doubles in place over every process of the group (an allreduce); called by one
  /// thread per process, in the same order on every process. Null: this process has the whole
  /// batch.
  void (*allreduce_sum)(double* values, std::size_t k) = nullptr;
};
inline BatchGroup batch_group{};

/// The slice of the batch the running thread computes, set by Model for the duration of a
/// forward or backward (one per thread).
struct BatchSlices {
  std::size_t slice = 0, slices = 1;  // this slice, of how many
  std::size_t first = 0, batch = 0;   // its first sample in the whole batch; the whole batch's size
  SliceBarrier* barrier = nullptr;    // slices > 1
  double* rows[2] = {nullptr, nullptr};  // shared: [batch, row_doubles] each, used alternately
  std::size_t row_doubles = 0;
  std::size_t round = 0;                // reductions done so far (the same count in every slice)
  std::uint64_t seed = 0, step = 0;     // Dropout's stream: the model's seed, the forward's number
  std::size_t global_batch = 0;         // with batch_group: the global batch's size, once known
};

inline BatchSlices*& current_slices() {
  static thread_local BatchSlices* current = nullptr;
  return current;
}

/// Makes `s` the running thread's slice context until the end of the scope.
class SliceScope {
 public:
  explicit SliceScope(BatchSlices& s) : previous_(current_slices()) { current_slices() = &s; }
  ~SliceScope() { current_slices() = previous_; }
  SliceScope(const SliceScope&) = delete;
  SliceScope& operator=(const SliceScope&) = delete;

 private:
  BatchSlices* previous_;
};

/// total[0, k) = the sum over every sample of the whole batch of its row, added in sample order,
/// where row(i, r) writes the k doubles of sample i of this call's n samples into r; `tmp` holds
/// k doubles. In a split batch every slice gets the same total (all slices must call this, in
/// the same order: it waits for the others). With batch_group set, the total is then summed over
/// the processes (every process must call this as often, in the same order).
template <class RowFn>
void reduce_over_batch(std::size_t n, std::size_t k, double* total, double* tmp, RowFn&& row) {
  std::fill_n(total, k, 0.0);
  BatchSlices* s = current_slices();
  auto* const across = batch_group.allreduce_sum;
  if (!s || s->slices <= 1) {
    for (std::size_t i = 0; i < n; ++i) {
      row(i, tmp);
      for (std::size_t c = 0; c < k; ++c) total[c] += tmp[c];
    }
    if (across) across(total, k);
    return;
  }
  double* rows = s->rows[s->round++ % 2];  // the other buffer may still be read by a slower slice
  for (std::size_t i = 0; i < n; ++i) row(i, rows + (s->first + i) * s->row_doubles);
  s->barrier->arrive_and_wait();
  if (!across) {
    for (std::size_t i = 0; i < s->batch; ++i)
      for (std::size_t c = 0; c < k; ++c) total[c] += rows[i * s->row_doubles + c];
    return;
  }
  // Slice 0 adds the rows, sums over the processes and leaves the total in row 0 (which no
  // other slice reads before the second barrier); then every slice reads it.
  if (s->slice == 0) {
    for (std::size_t i = 0; i < s->batch; ++i)
      for (std::size_t c = 0; c < k; ++c) total[c] += rows[i * s->row_doubles + c];
    across(total, k);
    std::copy_n(total, k, rows);
  }
  s->barrier->arrive_and_wait();
  if (s->slice != 0) std::copy_n(rows, k, total);
}

/// The number of samples in the whole batch this call's n samples belong to (with batch_group
/// set: summed over the processes, once per forward or backward; every process must call it).
inline std::size_t whole_batch(std::size_t n) {
  BatchSlices* s = current_slices();
  if (!batch_group.allreduce_sum) return s && s->slices > 1 ? s->batch : n;
  if (s && s->global_batch) return s->global_batch;
  double count = 0, tmp = 0;
  reduce_over_batch(n, 1, &count, &tmp, [](std::size_t, double* r) { r[0] = 1.0; });
  const auto global = static_cast<std::size_t>(count);
  if (s) s->global_batch = global;
  return global;
}
/// The running thread's slice context when the batch is split across threads (null otherwise).
inline const BatchSlices* split_batch() {
  const BatchSlices* s = current_slices();
  return s && s->slices > 1 ? s : nullptr;
}
/// Whether the running thread computes slice 0 (or the whole batch): the one that updates
/// state shared by the slices (BatchNorm's running statistics).
inline bool first_slice() {
  const BatchSlices* s = current_slices();
  return !s || s->slice == 0;
}

}  // namespace ctnn::detail
