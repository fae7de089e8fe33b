// Shape<Dims...>: the per-sample extents of a tensor, as a type.
//
// A Shape never includes the batch dimension: Batch<Shape<C, H, W>> holds N samples
// of C*H*W floats, row-major (NCHW), and N is a run-time value.
#pragma once

#include <array>
#include <cstddef>
#include <ostream>
#include <string>
#include <type_traits>

namespace ctnn {

template <std::size_t... Dims>
struct Shape {
  static constexpr std::size_t rank = sizeof...(Dims);
  /// Number of elements (1 for the rank-0 shape, as for a torch scalar).
  static constexpr std::size_t size = (std::size_t{1} * ... * Dims);
  static constexpr std::array<std::size_t, rank> dims{Dims...};

  /// Extent of dimension `i` (counts from 0; negative counts from the end, like torch).
  static constexpr std::size_t dim(std::ptrdiff_t i) {
    return dims[static_cast<std::size_t>(i < 0 ? i + static_cast<std::ptrdiff_t>(rank) : i)];
  }
  /// Row-major strides, in elements.
  static constexpr std::array<std::size_t, rank> strides = [] {
    std::array<std::size_t, rank> s{};
    std::size_t acc = 1;
    for (std::size_t i = rank; i-- > 0;) {
      s[i] = acc;
      acc *= dims[i];
    }
    return s;
  }();

  template <std::size_t... Other>
  friend constexpr bool operator==(Shape, Shape<Other...>) {
    return std::is_same_v<Shape, Shape<Other...>>;
  }

  /// "[2, 3, 4]"
  static std::string str() {
    std::string s = "[";
    for (std::size_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
  }
  friend std::ostream& operator<<(std::ostream& os, Shape) { return os << str(); }
};

template <class T>
inline constexpr bool is_shape_v = false;
template <std::size_t... D>
inline constexpr bool is_shape_v<Shape<D...>> = true;

template <class T>
concept ShapeType = is_shape_v<std::remove_cvref_t<T>>;

namespace detail {

// Shape arithmetic used by several layers. (Conv/pool arithmetic lives in core/conv_arithmetic.hpp.)

template <class S, std::size_t NewLast>
struct replace_last;
template <std::size_t... D, std::size_t NewLast>
struct replace_last<Shape<D...>, NewLast> {
  template <std::size_t... I>
  static auto make(std::index_sequence<I...>) {
    constexpr std::array<std::size_t, sizeof...(D)> d{D...};
    return Shape<(I + 1 == sizeof...(D) ? NewLast : d[I])...>{};
  }
  using type = decltype(make(std::make_index_sequence<sizeof...(D)>{}));
};

/// Index of the first zero extent, or rank when there is none.
template <class S>
constexpr std::size_t first_zero_dim() {
  for (std::size_t i = 0; i < S::rank; ++i)
    if (S::dims[i] == 0) return i;
  return S::rank;
}

}  // namespace detail

/// Shape<D..., N> with the last extent replaced: what Linear does to its input shape.
template <class S, std::size_t NewLast>
using replace_last_t = typename detail::replace_last<S, NewLast>::type;

}  // namespace ctnn
