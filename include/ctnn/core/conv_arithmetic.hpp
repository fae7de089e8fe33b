// Convolution and pooling arithmetic: the one place that says how big a conv/pool output is.
//
// Along one axis, with input extent I, padding P_l (before) and P_r (after), kernel K,
// stride S and dilation D (PyTorch's formula, torch.nn.Conv2d / MaxPool2d docs):
//
//   effective kernel  E = D * (K - 1) + 1
//   output            O = floor((I + P_l + P_r - E) / S) + 1
//   ceil_mode         O = ceil((I + P_l + P_r - E) / S) + 1, then O -= 1 if the last window
//                     would start at or after I + P_l (it must start inside the input or the
//                     left padding; pooling_output_shape in ATen)
//   'same'            P_l + P_r = D * (K - 1), P_l = total / 2, P_r = the rest (asymmetric
//                     when the total is odd, the extra on the right/bottom, as PyTorch)
//   'valid'           P_l = P_r = 0
//
// Everything here is constexpr and works on signed values internally, so an impossible
// geometry yields an output extent <= 0 that the layer's checks turn into a named error.
//
// Options spell sizes with Pair: an integer means a square (kernel_size = 5 is (5, 5)),
// braces give a rectangle (kernel_size = {3, 5}), as PyTorch's int-or-tuple arguments.
#pragma once

#include <cstddef>

namespace ctnn {

/// (h, w): `5` is (5, 5), `{3, 5}` is (3, 5) — PyTorch's `int or tuple` for 2-d options.
struct Pair {
  std::size_t h, w;
  constexpr Pair(std::size_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose (kernel_size = 5)
  constexpr Pair(std::size_t h_, std::size_t w_) : h(h_), w(w_) {}
  friend constexpr bool operator==(const Pair&, const Pair&) = default;
};

/// PyTorch's padding_mode of nn.Conv2d (F.pad's modes; zeros is 'constant' with 0).
enum class PaddingMode { zeros, reflect, replicate, circular };

/// What `padding=` holds: explicit amounts, or PyTorch's strings 'same' / 'valid'.
enum class PaddingKind { amounts, same, valid };

/// The padding option: `padding = 2`, `padding = {1, 2}`, `padding = nn::padding_same`.
struct Padding {
  std::size_t h, w;
  PaddingKind kind;
  constexpr Padding(std::size_t v) : h(v), w(v), kind(PaddingKind::amounts) {}  // NOLINT: implicit
  constexpr Padding(std::size_t h_, std::size_t w_) : h(h_), w(w_), kind(PaddingKind::amounts) {}
  constexpr Padding(Pair p) : h(p.h), w(p.w), kind(PaddingKind::amounts) {}  // NOLINT: implicit
  constexpr Padding(std::size_t h_, std::size_t w_, PaddingKind k) : h(h_), w(w_), kind(k) {}
  friend constexpr bool operator==(const Padding&, const Padding&) = default;
};

namespace nn {
using ctnn::Padding;
using ctnn::PaddingMode;
using ctnn::Pair;
/// padding='same': the output has the input's size (stride 1 only, as in PyTorch).
inline constexpr Padding padding_same{0, 0, PaddingKind::same};
/// padding='valid': no padding.
inline constexpr Padding padding_valid{0, 0, PaddingKind::valid};
}  // namespace nn

namespace conv {

/// Floor division (rounds toward negative infinity, ATen's div_rtn).
constexpr std::ptrdiff_t div_floor(std::ptrdiff_t a, std::ptrdiff_t b) {
  const std::ptrdiff_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/// D * (K - 1) + 1: the extent a dilated kernel spans.
constexpr std::size_t effective_kernel(std::size_t k, std::size_t d) { return d * (k - 1) + 1; }

/// Output extent along one axis; <= 0 means no window fits (the caller reports it).
constexpr std::ptrdiff_t output_size(std::size_t in, std::size_t pad_before, std::size_t pad_after, std::size_t k,
                                     std::size_t stride, std::size_t dilation = 1, bool ceil_mode = false) {
  const auto I = static_cast<std::ptrdiff_t>(in);
  const auto span = static_cast<std::ptrdiff_t>(in + pad_before + pad_after) -
                    static_cast<std::ptrdiff_t>(effective_kernel(k, dilation));
  const auto S = static_cast<std::ptrdiff_t>(stride);
  std::ptrdiff_t out = div_floor(span + (ceil_mode ? S - 1 : 0), S) + 1;
  // ceil_mode: the last window must start inside the input or the left padding.
  if (ceil_mode && out > 0 && (out - 1) * S >= I + static_cast<std::ptrdiff_t>(pad_before)) --out;
  return out;
}

/// Padding before and after along one axis.
struct AxisPadding {
  std::size_t before, after;
  constexpr std::size_t total() const { return before + after; }
  friend constexpr bool operator==(const AxisPadding&, const AxisPadding&) = default;
};

/// 'same': total D * (K - 1), before = total / 2, after = the rest (PyTorch's
/// _reversed_padding_repeated_twice and F.conv2d's padding='same').
constexpr AxisPadding same_padding(std::size_t k, std::size_t dilation) {
  const std::size_t total = dilation * (k - 1);
  return {total / 2, total - total / 2};
}

/// The amounts an option resolves to along the height (axis 0) or width (axis 1).
constexpr AxisPadding resolve_padding(Padding p, Pair kernel, Pair dilation, int axis) {
  const std::size_t k = axis == 0 ? kernel.h : kernel.w;
  const std::size_t d = axis == 0 ? dilation.h : dilation.w;
  switch (p.kind) {
    case PaddingKind::same: return same_padding(k, d);
    case PaddingKind::valid: return {0, 0};
    default: {
      const std::size_t v = axis == 0 ? p.h : p.w;
      return {v, v};
    }
  }
}

/// AdaptiveAvgPool window [start, end) of output index i: floor(i*I/O) .. ceil((i+1)*I/O).
constexpr std::size_t adaptive_start(std::size_t i, std::size_t in, std::size_t out) { return i * in / out; }
constexpr std::size_t adaptive_end(std::size_t i, std::size_t in, std::size_t out) {
  return ((i + 1) * in + out - 1) / out;
}

/// AvgPool2d's per-axis divisor factor for output index o (ATen avg_pool2d): the window is
/// clamped to input + padding; with count_include_pad=false, further to the input itself.
/// The divisor of a 2-d window is the product of its two axes' factors.
constexpr std::size_t avg_pool_count(std::size_t o, std::size_t in, std::size_t pad, std::size_t k, std::size_t stride,
                                     bool count_include_pad) {
  const auto I = static_cast<std::ptrdiff_t>(in), P = static_cast<std::ptrdiff_t>(pad);
  std::ptrdiff_t start = static_cast<std::ptrdiff_t>(o * stride) - P;
  std::ptrdiff_t end = start + static_cast<std::ptrdiff_t>(k);
  if (end > I + P) end = I + P;
  const std::ptrdiff_t pool = end - start;
  if (count_include_pad) return static_cast<std::size_t>(pool);
  if (start < 0) start = 0;
  if (end > I) end = I;
  return end > start ? static_cast<std::size_t>(end - start) : 0;
}

}  // namespace conv
}  // namespace ctnn
