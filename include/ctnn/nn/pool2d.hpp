// nn::MaxPool2d, nn::AvgPool2d, nn::AdaptiveAvgPool2d — torch.nn.MaxPool2d / AvgPool2d / AdaptiveAvgPool2d.
//
//   x: [N, C, H, W] -> y: [N, C, OH, OW], each channel pooled on its own
//   MaxPool2d:  OH = floor((H + 2P - D*(K-1) - 1) / S) + 1 (ceil with ceil_mode; the last window
//               must start inside the input or the left padding); padding counts as -inf
//   AvgPool2d:  the same with D = 1; divisor = divisor_override if set, else the window clamped to
//               input + padding (count_include_pad=true) or to the input (false)
//   AdaptiveAvgPool2d<OH, OW>: window i spans floor(i*H/OH) .. ceil((i+1)*H/OH), likewise for w
//
// stride = 0 means PyTorch's stride=None: the kernel size. Rules (compile errors, docs/errors.md):
//   ERROR_input_rank_not_3                        the sample is not [C, H, W]
//   ERROR_zero_sized_dimension                    a kernel, stride (one of h, w), dilation or output size of 0
//   ERROR_pool2d_padding_larger_than_half_kernel  padding > kernel_size / 2
//   ERROR_pool2d_output_size_zero                 no window fits
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/kernels/pool2d.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

/// torch.nn.MaxPool2d's arguments, in its keyword order (stride 0 = None = kernel_size).
struct MaxPool2dOptions {
  Pair kernel_size;
  Pair stride = 0;
  Pair padding = 0;
  Pair dilation = 1;
  bool ceil_mode = false;
};

/// torch.nn.AvgPool2d's arguments, in its keyword order (stride 0 = None = kernel_size;
/// divisor_override 0 = None).
struct AvgPool2dOptions {
  Pair kernel_size;
  Pair stride = 0;
  Pair padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
  std::size_t divisor_override = 0;
};

namespace detail {

/// The checks and geometry shared by MaxPool2d and AvgPool2d.
template <class In, class Path, Pair K, Pair S0, Pair P, Pair D, bool Ceil>
struct bind_pool2d {
  static constexpr bool chw = In::rank == 3;
  static constexpr std::size_t C = chw ? In::dims[0] : 0, H = chw ? In::dims[1] : 0, W = chw ? In::dims[2] : 0;
  static constexpr Pair S = S0.h == 0 && S0.w == 0 ? K : S0;
  static constexpr bool positive = K.h && K.w && S.h && S.w && D.h && D.w;
  static constexpr std::ptrdiff_t oh = positive ? conv::output_size(H, P.h, P.h, K.h, S.h, D.h, Ceil) : 0;
  static constexpr std::ptrdiff_t ow = positive ? conv::output_size(W, P.w, P.w, K.w, S.w, D.w, Ceil) : 0;

  // The first failing rule is reported (core/diagnostics.hpp), so one mistake gives one error.
  using checked =
      rules<rule<!chw, ERROR_input_rank_not_3<Path, In>>,
            rule<K.h == 0 || K.w == 0, ERROR_zero_sized_dimension<Path, ctnn::kernel<K.h, K.w>>>,
            rule<S.h == 0 || S.w == 0, ERROR_zero_sized_dimension<Path, ctnn::stride<S.h, S.w>>>,
            rule<D.h == 0 || D.w == 0, ERROR_zero_sized_dimension<Path, ctnn::dilation<D.h, D.w>>>,
            rule<(P.h > K.h / 2 || P.w > K.w / 2),
                 ERROR_pool2d_padding_larger_than_half_kernel<Path, ctnn::padding<P.h, P.w>, ctnn::kernel<K.h, K.w>>>,
            rule<(oh <= 0 || ow <= 0),
                 ERROR_pool2d_output_size_zero<Path, ctnn::input<H, W>, ctnn::kernel<K.h, K.w>, ctnn::padding<P.h, P.w>,
                                               ctnn::stride<S.h, S.w>, ctnn::dilation<D.h, D.w>>>>;
  static constexpr bool valid = checked::ok;
  // clang-format off: the fields in Pool2dGeometry's rows
  static constexpr kernels::Pool2dGeometry geometry{
      .C = C, .H = H, .W = W,
      .KH = K.h, .KW = K.w, .SH = S.h, .SW = S.w, .DH = D.h, .DW = D.w,
      .PH = P.h, .PW = P.w,
      .OH = valid ? static_cast<std::size_t>(oh) : 1, .OW = valid ? static_cast<std::size_t>(ow) : 1};
  // clang-format on
};

inline std::string pair_repr(Pair p) {
  return p.h == p.w ? std::to_string(p.h) : "(" + std::to_string(p.h) + ", " + std::to_string(p.w) + ")";
}

}  // namespace detail

/// The bound MaxPool2d layer.
template <class InShape, MaxPool2dOptions Opt, kernels::Pool2dGeometry G>
struct BoundMaxPool2d : ParameterFree<BoundMaxPool2d<InShape, Opt, G>> {
  static constexpr MaxPool2dOptions options = Opt;
  static constexpr kernels::Pool2dGeometry geometry = G;
  using input_shape = InShape;
  using output_shape = Shape<G.C, G.OH, G.OW>;
  static constexpr std::size_t activation_floats = output_shape::size;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool runs_in_pieces = true;  // (nn::runs_in_pieces)
  static constexpr std::size_t scratch_floats = kernels::pool2d_scratch_floats<G>;

  // forward: y[n, c] = max over each window of x[n, c] (padding = -inf)
  // x: [N, C, H, W] -> y: [N, C, OH, OW]
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    kernels::maxpool2d_forward<G>(x, act, n, scratch);
    return act;
  }

  // backward: dx[argmax of each window] += dy (the first maximum in scan order, as PyTorch)
  void backward(const float* x, float* dx, std::size_t n, const float*, float* gact, float*) const {
    if (dx) kernels::maxpool2d_backward<G>(x, gact, dx, n);
  }

  static std::string type_name() { return "MaxPool2d"; }
  void print(std::ostream& os, int) const {
    os << "MaxPool2d(kernel_size=" << detail::pair_repr(Opt.kernel_size)
       << ", stride=" << detail::pair_repr({G.SH, G.SW}) << ", padding=" << detail::pair_repr(Opt.padding)
       << ", dilation=" << detail::pair_repr(Opt.dilation) << ", ceil_mode=" << (Opt.ceil_mode ? "True" : "False")
       << ')';
  }
};

/// The bound AvgPool2d layer.
template <class InShape, AvgPool2dOptions Opt, kernels::Pool2dGeometry G>
struct BoundAvgPool2d : ParameterFree<BoundAvgPool2d<InShape, Opt, G>> {
  static constexpr AvgPool2dOptions options = Opt;
  static constexpr kernels::Pool2dGeometry geometry = G;
  using input_shape = InShape;
  using output_shape = Shape<G.C, G.OH, G.OW>;
  static constexpr std::size_t activation_floats = output_shape::size;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool runs_in_pieces = true;  // (nn::runs_in_pieces)
  static constexpr std::size_t scratch_floats = kernels::pool2d_scratch_floats<G>;

  // forward: y[n, c] = sum over each window of x[n, c] / divisor
  // x: [N, C, H, W] -> y: [N, C, OH, OW]
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    kernels::avgpool2d_forward<G, Opt.count_include_pad, Opt.divisor_override>(x, act, n, scratch);
    return act;
  }

  // backward: each input cell of a window gets dy / divisor (the forward's divisor)
  void backward(const float*, float* dx, std::size_t n, const float*, float* gact, float* scratch) const {
    if (dx) kernels::avgpool2d_backward<G, Opt.count_include_pad, Opt.divisor_override>(gact, dx, n, scratch);
  }

  static std::string type_name() { return "AvgPool2d"; }
  void print(std::ostream& os, int) const {
    os << "AvgPool2d(kernel_size=" << detail::pair_repr(Opt.kernel_size)
       << ", stride=" << detail::pair_repr({G.SH, G.SW}) << ", padding=" << detail::pair_repr(Opt.padding) << ')';
  }
};

/// The bound AdaptiveAvgPool2d layer.
template <class InShape, std::size_t OH, std::size_t OW>
struct BoundAdaptiveAvgPool2d : ParameterFree<BoundAdaptiveAvgPool2d<InShape, OH, OW>> {
  static constexpr std::size_t C = InShape::dims[0], H = InShape::dims[1], W = InShape::dims[2];
  using input_shape = InShape;
  using output_shape = Shape<C, OH, OW>;
  static constexpr std::size_t activation_floats = output_shape::size;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool runs_in_pieces = true;  // (nn::runs_in_pieces)
  static constexpr std::size_t scratch_floats = kernels::adaptive_pool_scratch_floats<W>;

  // forward: y[n, c, i, j] = mean of x[n, c] over window (i, j)
  // x: [N, C, H, W] -> y: [N, C, OH, OW]
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    kernels::adaptive_avgpool2d_forward<C, H, W, OH, OW>(x, act, n, scratch);
    return act;
  }

  // backward: each cell of window (i, j) gets dy[i, j] / window size
  void backward(const float*, float* dx, std::size_t n, const float*, float* gact, float*) const {
    if (dx) kernels::adaptive_avgpool2d_backward<C, H, W, OH, OW>(gact, dx, n);
  }

  static std::string type_name() { return "AdaptiveAvgPool2d"; }
  void print(std::ostream& os, int) const { os << "AdaptiveAvgPool2d(output_size=(" << OH << ", " << OW << "))"; }
};

namespace detail {

template <class In, class Path, MaxPool2dOptions Opt>
struct bind_maxpool2d {
  using b = bind_pool2d<In, Path, Opt.kernel_size, Opt.stride, Opt.padding, Opt.dilation, Opt.ceil_mode>;
  using type = std::conditional_t<b::valid, BoundMaxPool2d<In, Opt, b::geometry>, PoisonedLayer>;
};

template <class In, class Path, AvgPool2dOptions Opt>
struct bind_avgpool2d {
  using b = bind_pool2d<In, Path, Opt.kernel_size, Opt.stride, Opt.padding, Pair{1}, Opt.ceil_mode>;
  using type = std::conditional_t<b::valid, BoundAvgPool2d<In, Opt, b::geometry>, PoisonedLayer>;
};

template <class In, class Path, std::size_t OH, std::size_t OW>
struct bind_adaptive_avgpool2d {
  using checked = rules<rule<In::rank != 3, ERROR_input_rank_not_3<Path, In>>,
                        rule<OH == 0 || OW == 0, ERROR_zero_sized_dimension<Path, output_size<OH, OW>>>>;
  using type = std::conditional_t<checked::ok, BoundAdaptiveAvgPool2d<In, OH, OW>, PoisonedLayer>;
};

template <class T> struct is_maxpool2d_impl : std::false_type {};
template <class In, MaxPool2dOptions Opt, kernels::Pool2dGeometry G>
struct is_maxpool2d_impl<BoundMaxPool2d<In, Opt, G>> : std::true_type {};
template <class T> struct is_avgpool2d_impl : std::false_type {};
template <class In, AvgPool2dOptions Opt, kernels::Pool2dGeometry G>
struct is_avgpool2d_impl<BoundAvgPool2d<In, Opt, G>> : std::true_type {};
template <class T> struct is_adaptive_avgpool2d_impl : std::false_type {};
template <class In, std::size_t OH, std::size_t OW>
struct is_adaptive_avgpool2d_impl<BoundAdaptiveAvgPool2d<In, OH, OW>> : std::true_type {};

}  // namespace detail

template <class T> inline constexpr bool is_maxpool2d = detail::is_maxpool2d_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_avgpool2d = detail::is_avgpool2d_impl<std::remove_cvref_t<T>>::value;
template <class T>
inline constexpr bool is_adaptive_avgpool2d = detail::is_adaptive_avgpool2d_impl<std::remove_cvref_t<T>>::value;

/// torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False)
template <MaxPool2dOptions Opt>
struct MaxPool2d {
  template <class InShape, class Path>
  using bind = typename detail::bind_maxpool2d<InShape, Path, Opt>::type;
};

/// torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
/// divisor_override=None)
template <AvgPool2dOptions Opt>
struct AvgPool2d {
  template <class InShape, class Path>
  using bind = typename detail::bind_avgpool2d<InShape, Path, Opt>::type;
};

/// torch.nn.AdaptiveAvgPool2d((OH, OW)); AdaptiveAvgPool2d<1> is (1, 1).
template <std::size_t OH, std::size_t OW = OH>
struct AdaptiveAvgPool2d {
  template <class InShape, class Path>
  using bind = typename detail::bind_adaptive_avgpool2d<InShape, Path, OH, OW>::type;
};

}  // namespace ctnn::nn
