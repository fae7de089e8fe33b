// Cutting n items into the parts that T threads take (or a batch's pieces): one rule, three uses.
//   part_range(n, unit, T, t)   part t's [begin, end), cut at multiples of unit, the last ending at n
//   batch_part(n, parts, i)     samples: {first, count}, sizes differing by at most one
//   elementwise_part(n, T, t)   floats updated elementwise: {first, count}, cut at multiples of 16
// (Conv2d's prepared weights and held gradients are cut by output channel at whole panels:
// kernels/conv2d/shared.hpp.)
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

namespace ctnn::detail {

/// Part t of T of n items, cut at multiples of `unit` (the last part ends at n): {begin, end}.
constexpr std::pair<std::size_t, std::size_t> part_range(std::size_t n, std::size_t unit, std::size_t T,
                                                         std::size_t t) {
  const std::size_t units = (n + unit - 1) / unit;
  return {std::min(n, units * t / T * unit), std::min(n, units * (t + 1) / T * unit)};
}

/// Part i of `parts` over a batch of n samples: {first sample, samples}; the sizes differ by at
/// most one. (A Model's thread slices; a Sequential's pieces.)
constexpr std::pair<std::size_t, std::size_t> batch_part(std::size_t n, std::size_t parts, std::size_t i) {
  const auto [b, e] = part_range(n, 1, parts, i);
  return {b, e - b};
}

/// Part t of T of an array of n floats that each thread updates elementwise: {first, count}, the
/// cuts at multiples of 16 floats (every SIMD width), so that each element takes the same vector
/// or scalar path as with one thread and the results do not depend on T.
constexpr std::pair<std::size_t, std::size_t> elementwise_part(std::size_t n, std::size_t T, std::size_t t) {
  const auto [b, e] = part_range(n, 16, T, t);
  return {b, e - b};
}

}  // namespace ctnn::detail
