// ctnn::set_num_threads / get_num_threads, like torch's, and the small thread pool behind them.
//
// The value is the number of threads a model may split a batch over (Model::forward and
// backward: each thread runs the whole network on its own slice of the batch). The default is
// the hardware concurrency; set_num_threads(1) makes everything run on the calling thread.
//
// Why a pool of our own rather than OpenMP: the work is a handful of large, equal tasks (one batch
// slice per core), so all a pool needs is to wake T-1 parked threads and wait for them. A
// persistent pool does that without allocating (a training step must not allocate), lets the
// caller run slice 0 itself, keeps one compiler flag and runtime fewer (no -fopenmp, no libgomp
// vs libomp split between g++ and clang), and cannot oversubscribe with libtorch/oneDNN's OpenMP
// threads in the same process.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctnn/core/parts.hpp"

namespace ctnn {

namespace detail {
inline std::atomic<int>& num_threads_setting() {
  static std::atomic<int> n{static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
  return n;
}
}  // namespace detail

/// torch.set_num_threads(n); n must be >= 1.
inline void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("ctnn::set_num_threads: expected n >= 1, got " + std::to_string(n));
  detail::num_threads_setting().store(n);
}
/// torch.get_num_threads()
inline int get_num_threads() { return detail::num_threads_setting().load(); }

namespace detail {

/// A fixed set of parked worker threads that run task t = 1..T-1 of a parallel_for while the
/// caller runs task 0. Workers start on first use and live until exit; a call allocates nothing
/// once the pool has grown to T-1 workers.
class ThreadPool {
 public:
  using task_fn = void (*)(void* ctx, std::size_t t);

  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  /// Runs fn(ctx, t) for t in [0, T), task 0 on the calling thread, and returns when all are
  /// done; the first exception thrown by a task is rethrown here. If the pool is busy (another
  /// thread is inside run, or a task calls run again), the tasks run one after another on the
  /// caller — unless `concurrent`: then the tasks may wait for each other (a barrier), so run
  /// waits for the pool to be free and always runs them on T threads (never call it from a task:
  /// in_task() says whether the caller is one).
  void run(std::size_t T, task_fn fn, void* ctx, bool concurrent = false) {
    std::unique_lock busy(run_mutex_, std::defer_lock);
    if (concurrent) busy.lock();
    else (void)busy.try_lock();
    if (T <= 1 || !busy.owns_lock()) {
      for (std::size_t t = 0; t < T; ++t) fn(ctx, t);
      return;
    }
    grow(T - 1);
    {
      std::lock_guard lock(mutex_);
      fn_ = fn;
      ctx_ = ctx;
      tasks_ = T;
      pending_.store(T - 1, std::memory_order_relaxed);
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    std::exception_ptr mine;
    try {
      TaskScope scope;
      fn(ctx, 0);
    } catch (...) {
      mine = std::current_exception();
    }
    wait_for_workers();
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

  /// Start workers until there are n (run() does this too; this lets a caller do it up front).
  /// Does nothing while the pool is busy: a nested run() runs its tasks on the caller anyway.
  void reserve(std::size_t n) {
    std::unique_lock busy(run_mutex_, std::try_to_lock);
    if (busy.owns_lock()) grow(n);
  }

  /// Whether the calling thread is running a task of run() (a nested run() is sequential).
  static bool in_task() { return task_depth() > 0; }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

 private:
  ThreadPool() = default;

  static int& task_depth() {
    static thread_local int depth = 0;
    return depth;
  }
  struct TaskScope {
    TaskScope() { ++task_depth(); }
    ~TaskScope() { --task_depth(); }
  };

  void grow(std::size_t n) {
    while (workers_.size() < n) {
      const std::size_t id = workers_.size() + 1;  // the task index this worker runs
      workers_.emplace_back([this, id] { work(id); });
    }
  }

  void work(std::size_t id) {
    std::uint64_t seen = 0;
    for (;;) {
      task_fn fn;
      void* ctx;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (id >= tasks_) continue;  // this round needs fewer workers
        fn = fn_;
        ctx = ctx_;
      }
      try {
        TaskScope scope;
        fn(ctx, id);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);
        done_.notify_one();
      }
    }
  }

  void wait_for_workers() {
    // The caller's own slice is usually about as long as the others: spin briefly, then sleep.
    for (int i = 0; i < 2000 && pending_.load(std::memory_order_acquire) != 0; ++i) std::this_thread::yield();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }

  std::mutex run_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  task_fn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::size_t tasks_ = 0;
  std::uint64_t generation_ = 0;
  std::atomic<std::size_t> pending_{0};
  std::exception_ptr error_;
  bool stop_ = false;
};

/// Parameters per model above which the per-step elementwise passes over all of them (zero_grad,
/// the optimizers' updates, adding the threads' gradients) are split across the model's threads:
/// 1 Mi floats (ResNet-18's 11 M: 1-3 ms a pass on one core of the project's VM, memory-bound).
inline constexpr std::size_t parallel_parameter_floats = std::size_t{1} << 20;

/// f(t) for t in [0, T) on up to T threads (task 0 on the caller); returns when all are done.
/// `concurrent`: on exactly T threads at once, waiting for the pool if it is busy (the tasks meet
/// at a barrier; see ThreadPool::run).
template <class F>
void parallel_for(std::size_t T, F&& f, bool concurrent = false) {
  using Fn = std::remove_reference_t<F>;
  auto call = [](void* ctx, std::size_t t) { (*static_cast<Fn*>(ctx))(t); };
  ThreadPool::instance().run(T, call, const_cast<void*>(static_cast<const void*>(std::addressof(f))), concurrent);
}

}  // namespace detail

}  // namespace ctnn
