// ctnn::set_num_threads / get_num_threads, like torch's.
//
// The value is the number of threads a model's batch work may be split over. The default is
// the hardware concurrency; set_num_threads(1) makes every kernel run on the calling thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

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

}  // namespace ctnn
