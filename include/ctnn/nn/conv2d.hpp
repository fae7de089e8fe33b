// nn::Conv2d<Conv2dOptions{...}> and nn::LazyConv2d<LazyConv2dOptions{...}> — torch.nn.Conv2d / LazyConv2d.
//
//   y[n, o] = b[o] + sum_{c in group(o)} w[o, c] ⋆ x_pad[n, c]      (⋆: 2-d cross-correlation)
//   x: [N, C, H, W], w: [O, C/groups, KH, KW], b: [O], y: [N, O, OH, OW]
//   OH = floor((H + PT + PB - DH*(KH-1) - 1) / SH) + 1, likewise OW (core/conv_arithmetic.hpp)
//
// Options are PyTorch's keyword arguments in PyTorch's order; an int is a square, {h, w} a
// rectangle: nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>.
// LazyConv2d takes in_channels from the shape that reaches it. padding_mode pads exactly as
// F.pad does; padding = nn::padding_same / nn::padding_valid are PyTorch's 'same' / 'valid'.
// Rules (compile errors, see docs/errors.md), checked in this order:
//   ERROR_input_rank_not_3                          the sample is not [C, H, W]
//   ERROR_zero_sized_dimension                      a channel count, kernel, stride, dilation or groups of 0
//   ERROR_conv2d_in_channels_mismatch               in_channels differs from the input's C
//   ERROR_conv2d_{in,out}_channels_not_divisible_by_groups
//   ERROR_conv2d_padding_same_with_stride           'same' with a stride other than 1
//   ERROR_reflect_padding_not_smaller_than_input    reflect padding >= H or W
//   ERROR_circular_padding_larger_than_input        circular padding > H or W
//   ERROR_conv2d_kernel_larger_than_padded_input    D*(K-1)+1 > padded H or W
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <ostream>
#include <string>
#include <variant>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/core/slices.hpp"
#include "ctnn/kernels/conv2d.hpp"
#include "ctnn/nn/init.hpp"
#include "ctnn/nn/module.hpp"
#include "ctnn/nn/shared_weights.hpp"

namespace ctnn::nn {

/// torch.nn.Conv2d's arguments, in its keyword order.
struct Conv2dOptions {
  std::size_t in_channels;
  std::size_t out_channels;
  Pair kernel_size;
  Pair stride = 1;
  Padding padding = 0;
  Pair dilation = 1;
  std::size_t groups = 1;
  bool bias = true;
  PaddingMode padding_mode = PaddingMode::zeros;
};

/// torch.nn.LazyConv2d's arguments (in_channels is inferred).
struct LazyConv2dOptions {
  std::size_t out_channels;
  Pair kernel_size;
  Pair stride = 1;
  Padding padding = 0;
  Pair dilation = 1;
  std::size_t groups = 1;
  bool bias = true;
  PaddingMode padding_mode = PaddingMode::zeros;
};

namespace detail {
/// The geometry of Conv2d options on input [C, H, W] (padding resolved; 'same' may be asymmetric).
template <std::size_t C, std::size_t H, std::size_t W, Conv2dOptions Opt>
constexpr kernels::Conv2dGeometry conv2d_geometry() {
  const auto ph = conv::resolve_padding(Opt.padding, Opt.kernel_size, Opt.dilation, 0);
  const auto pw = conv::resolve_padding(Opt.padding, Opt.kernel_size, Opt.dilation, 1);
  // clang-format off: the fields in Conv2dGeometry's rows
  return {.C = C, .H = H, .W = W,
          .O = Opt.out_channels, .KH = Opt.kernel_size.h, .KW = Opt.kernel_size.w,
          .SH = Opt.stride.h, .SW = Opt.stride.w, .DH = Opt.dilation.h, .DW = Opt.dilation.w,
          .PT = ph.before, .PB = ph.after, .PL = pw.before, .PR = pw.after,
          .groups = Opt.groups, .mode = Opt.padding_mode};
  // clang-format on
}
}  // namespace detail

/// The bound Conv2d layer: exact-size weight [O, C/groups, KH, KW] and bias [O].
template <class InShape, Conv2dOptions Opt>
struct BoundConv2d : Module<BoundConv2d<InShape, Opt>> {
  static constexpr Conv2dOptions options = Opt;
  static constexpr kernels::Conv2dGeometry geometry =
      detail::conv2d_geometry<InShape::dims[0], InShape::dims[1], InShape::dims[2], Opt>();
  static constexpr std::size_t in_channels = Opt.in_channels, out_channels = Opt.out_channels;
  static constexpr std::size_t groups = Opt.groups;
  static constexpr std::size_t KH = Opt.kernel_size.h, KW = Opt.kernel_size.w;
  static constexpr std::size_t OH = geometry.OH(), OW = geometry.OW();
  static constexpr bool has_bias = Opt.bias;
  using input_shape = InShape;
  using output_shape = Shape<out_channels, OH, OW>;
  using weight_shape = Shape<out_channels, in_channels / groups, KH, KW>;

  static constexpr std::size_t parameter_count = weight_shape::size + (has_bias ? out_channels : 0);
  static constexpr std::size_t activation_floats = output_shape::size;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool runs_in_pieces = true;  // (nn::runs_in_pieces)
  // Forward (padded input, im2col block) and backward (padded input, im2col panel, padded dz,
  // padded dx) share the workspace's scratch.
  static constexpr std::size_t scratch_floats =
      std::max(kernels::conv2d_scratch_floats<geometry>, kernels::conv2d_backward_scratch_floats<geometry>);

  Parameter<weight_shape> weight;
  /// Present only when bias=true (torch's bias=None otherwise).
  [[no_unique_address]] std::conditional_t<has_bias, Parameter<Shape<out_channels>>, std::monostate> bias;
  /// The weights as this conv's form prepares them, shared by the slices of a split batch, and
  /// the slices' held weight gradients (kernels/conv2d/shared.hpp; 0: this form prepares nothing).
  static constexpr std::size_t prepared_floats = kernels::conv2d_prepared_floats<geometry>;
  /// Whether a forward alone keeps its prepared weights for its backward.
  static constexpr bool keeps_prepared = kernels::conv2d_keeps_prepared<geometry>;
  [[no_unique_address]] mutable std::conditional_t<(prepared_floats > 0), SharedWeights, std::monostate> shared{
      make_shared()};

  /// A pass's weights in a split batch: this slice prepares its part, then waits for the others.
  const float* share(kernels::Conv2dPass pass, const ctnn::detail::BatchSlices& s) const {
    float* all = shared.shared();
    kernels::conv2d_prepare<geometry>(weight.data(), all, pass, s.slice, s.slices);
    s.barrier->arrive_and_wait();
    return all;
  }
  static auto make_shared() {
    if constexpr (prepared_floats > 0)
      return SharedWeights(prepared_floats, kernels::conv2d_held_floats<geometry>, keeps_prepared);
    else return std::monostate{};
  }

  void reset_parameters(Generator& gen) {
    if constexpr (has_bias) init::default_reset_(weight, &bias, gen);
    else init::default_reset_(weight, static_cast<Tensor<Shape<out_channels>>*>(nullptr), gen);
  }

  // forward: y = Op(conv2d(x, w) + b), Op fused into the kernel's epilogue (identity when alone).
  // x: [N, C, H, W] -> y: [N, O, OH, OW]
  template <class Op>
  const float* forward_fused(const float* x, std::size_t n, float* act, float* scratch) const {
    const float* b = nullptr;
    if constexpr (has_bias) b = bias.data();
    const float* prepared = nullptr;
    if constexpr (prepared_floats > 0) {
      if (const auto* s = ctnn::detail::split_batch()) {
        if (shared.ready(s->slices)) prepared = share(kernels::Conv2dPass::forward, *s);
      } else if constexpr (keeps_prepared) {
        float* mine = shared.keep();
        kernels::conv2d_prepare<geometry>(weight.data(), mine, kernels::Conv2dPass::forward);
        prepared = mine;
      } else {
        shared.forget();
      }
    }
    kernels::conv2d_forward<geometry, has_bias, Op>(x, weight.data(), b, act, n, scratch, prepared);
    return act;
  }
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    return forward_fused<kernels::identity_op>(x, n, act, scratch);
  }

  // backward: dz = Op'(y) * dy (gact holds dy; the kernel applies Op' as it reads it, or in place), then
  //   dW += sum_n dz ⋆ x_pad  [O, C/g, KH, KW]      db += sum over n, oh, ow of dz  [O]
  //   dx  = the padding's adjoint of conv_transpose(dz, W)  [N, C, H, W]  (padded cells flow back to
  //         the input cells they were copied from: reflect / replicate / circular accumulate)
  template <class Op>
  void backward_fused(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    float* db = nullptr;
    if constexpr (has_bias) db = bias.grad.data();
    const float* prepared = nullptr;
    float* held = nullptr;
    if constexpr (prepared_floats > 0) {
      if (const auto* s = ctnn::detail::split_batch()) {
        if (shared.ready(s->slices)) {
          prepared = share(kernels::Conv2dPass::backward, *s);
          held = shared.held(s->slice);
        }
      } else if (float* kept = shared.kept(); kept && dx) {  // (without dx the backward reads no weights)
        kernels::conv2d_prepare<geometry>(weight.data(), kept, kernels::Conv2dPass::backward);
        prepared = kept;
      }
    }
    kernels::conv2d_backward<geometry, has_bias, Op>(x, weight.data(), act, gact, weight.grad.data(), db, dx, n,
                                                     scratch, prepared, held);
  }
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    backward_fused<kernels::identity_op>(x, dx, n, act, gact, scratch);
  }

  // ---- a batch split across threads (Model; see SharedWeights) ----
  /// Room for T slices (Model, before a split forward): in a split batch every slice's weight
  /// gradient is held and folded into weight.grad by fold_weight_grads (a thread's copy of the
  /// network leaves its own weight.grad untouched), and the slices meet once in each pass.
  void reserve_slices(std::size_t T)
    requires(prepared_floats > 0)
  {
    shared.reserve(T);
  }
  /// Thread t of T adds its part of the T slices' held weight gradients into weight.grad.
  void fold_weight_grads(std::size_t t, std::size_t T)
    requires(prepared_floats > 0)
  {
    kernels::conv2d_fold_held<geometry>(shared.held(), T, weight.grad.data(), t, T);
  }
  /// This layer in a thread's copy of the network reads `network`'s shared weights and holds its
  /// gradient there.
  void link_shared(const BoundConv2d& network)
    requires(prepared_floats > 0)
  {
    shared.link(network.shared);
  }

  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    f(prefix + "weight", weight);
    if constexpr (has_bias) f(prefix + "bias", bias);
  }
  template <class F>
  void apply(F&& f) {
    f(*this);
  }
  static std::string type_name() { return "Conv2d"; }
  /// PyTorch's repr: stride always, the other options only when not their default.
  void print(std::ostream& os, int) const {
    auto pair = [](std::size_t h, std::size_t w) { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; };
    os << "Conv2d(" << in_channels << ", " << out_channels << ", kernel_size=" << pair(KH, KW)
       << ", stride=" << pair(Opt.stride.h, Opt.stride.w);
    if (Opt.padding.kind == PaddingKind::same) os << ", padding=same";
    else if (Opt.padding.kind == PaddingKind::valid) os << ", padding=valid";
    else if (Opt.padding.h != 0 || Opt.padding.w != 0) os << ", padding=" << pair(Opt.padding.h, Opt.padding.w);
    if (Opt.dilation.h != 1 || Opt.dilation.w != 1) os << ", dilation=" << pair(Opt.dilation.h, Opt.dilation.w);
    if (groups != 1) os << ", groups=" << groups;
    if (!has_bias) os << ", bias=False";
    constexpr const char* modes[] = {"zeros", "reflect", "replicate", "circular"};
    if (Opt.padding_mode != PaddingMode::zeros) os << ", padding_mode=" << modes[static_cast<int>(Opt.padding_mode)];
    os << ')';
  }
};

namespace detail {

inline constexpr std::size_t lazy_channels = std::numeric_limits<std::size_t>::max();

template <class In, class Path, Conv2dOptions Opt>
struct bind_conv2d {
  static constexpr bool chw = In::rank == 3;
  static constexpr std::size_t C = chw ? In::dims[0] : 0, H = chw ? In::dims[1] : 0, W = chw ? In::dims[2] : 0;
  static constexpr std::size_t in_ch = Opt.in_channels == lazy_channels ? C : Opt.in_channels;
  static constexpr Conv2dOptions resolved = [] {
    Conv2dOptions o = Opt;
    o.in_channels = in_ch;
    return o;
  }();
  static constexpr auto K = Opt.kernel_size, S = Opt.stride, D = Opt.dilation;
  static constexpr bool positive = Opt.out_channels && in_ch && K.h && K.w && S.h && S.w && D.h && D.w && Opt.groups;
  static constexpr auto ph = conv::resolve_padding(Opt.padding, K, D, 0);
  static constexpr auto pw = conv::resolve_padding(Opt.padding, K, D, 1);
  static constexpr std::size_t PH = ph.before > ph.after ? ph.before : ph.after;  // for messages
  static constexpr std::size_t PW = pw.before > pw.after ? pw.before : pw.after;
  static constexpr std::size_t EH = positive ? conv::effective_kernel(K.h, D.h) : 0;
  static constexpr std::size_t EW = positive ? conv::effective_kernel(K.w, D.w) : 0;
  static constexpr bool is_same = Opt.padding.kind == PaddingKind::same;
  static constexpr PaddingMode mode = Opt.padding_mode;

  // The first failing rule is reported (core/diagnostics.hpp), so one mistake gives one error.
  static constexpr std::size_t G = Opt.groups;
  using checked = rules<
      rule<!chw, ERROR_input_rank_not_3<Path, In>>,
      rule<Opt.out_channels == 0, ERROR_zero_sized_dimension<Path, ctnn::out_channels<Opt.out_channels>>>,
      rule<Opt.in_channels == 0, ERROR_zero_sized_dimension<Path, ctnn::in_channels<0>>>,
      rule<K.h == 0 || K.w == 0, ERROR_zero_sized_dimension<Path, ctnn::kernel<K.h, K.w>>>,
      rule<S.h == 0 || S.w == 0, ERROR_zero_sized_dimension<Path, ctnn::stride<S.h, S.w>>>,
      rule<D.h == 0 || D.w == 0, ERROR_zero_sized_dimension<Path, ctnn::dilation<D.h, D.w>>>,
      rule<G == 0, ERROR_zero_sized_dimension<Path, ctnn::groups<0>>>,
      rule<Opt.in_channels != lazy_channels && Opt.in_channels != C,
           ERROR_conv2d_in_channels_mismatch<Path, ctnn::in_channels<Opt.in_channels>, ctnn::inferred_in_channels<C>>>,
      rule<G != 0 && in_ch % G != 0,
           ERROR_conv2d_in_channels_not_divisible_by_groups<Path, ctnn::in_channels<in_ch>, ctnn::groups<G>>>,
      rule<G != 0 && Opt.out_channels % G != 0, ERROR_conv2d_out_channels_not_divisible_by_groups<
                                                    Path, ctnn::out_channels<Opt.out_channels>, ctnn::groups<G>>>,
      rule<is_same && (S.h != 1 || S.w != 1), ERROR_conv2d_padding_same_with_stride<Path, ctnn::stride<S.h, S.w>>>,
      rule<(mode == PaddingMode::reflect && (PH >= H || PW >= W)),
           ERROR_reflect_padding_not_smaller_than_input<Path, ctnn::padding<PH, PW>, ctnn::input<H, W>>>,
      rule<(mode == PaddingMode::circular && (PH > H || PW > W)),
           ERROR_circular_padding_larger_than_input<Path, ctnn::padding<PH, PW>, ctnn::input<H, W>>>,
      rule<(EH > H + ph.total() || EW > W + pw.total()),
           ERROR_conv2d_kernel_larger_than_padded_input<Path, ctnn::input<H, W>, ctnn::padding<PH, PW>,
                                                        ctnn::kernel<K.h, K.w>, ctnn::dilation<D.h, D.w>>>>;
  using type = std::conditional_t<checked::ok, BoundConv2d<In, resolved>, PoisonedLayer>;
};

template <class T>
struct is_conv2d_bound : std::false_type {};
template <class In, Conv2dOptions Opt>
struct is_conv2d_bound<BoundConv2d<In, Opt>> : std::true_type {};

constexpr Conv2dOptions from_lazy(LazyConv2dOptions o) {
  return {lazy_channels, o.out_channels, o.kernel_size, o.stride,      o.padding,
          o.dilation,    o.groups,       o.bias,        o.padding_mode};
}

}  // namespace detail

/// `if constexpr (nn::is_conv2d<decltype(layer)>)` in apply(): Conv2d and LazyConv2d layers.
template <class T>
inline constexpr bool is_conv2d = detail::is_conv2d_bound<std::remove_cvref_t<T>>::value;

/// torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
/// groups=1, bias=True, padding_mode='zeros')
template <Conv2dOptions Opt>
struct Conv2d {
  template <class InShape, class Path>
  using bind = typename detail::bind_conv2d<InShape, Path, Opt>::type;
};

/// torch.nn.LazyConv2d(out_channels, kernel_size, ...): in_channels is the input's C.
template <LazyConv2dOptions Opt>
struct LazyConv2d {
  template <class InShape, class Path>
  using bind = typename detail::bind_conv2d<InShape, Path, detail::from_lazy(Opt)>::type;
};

// ---- corr2d: Dive into Deep Learning's 2-d cross-correlation ---------------------------------

/// d2l.corr2d(X, K): Y[i, j] = sum_{a, b} X[i + a, j + b] * K[a, b].
/// X: [H, W], K: [KH, KW] -> Y: [H - KH + 1, W - KW + 1]
template <std::size_t H, std::size_t W, std::size_t KH, std::size_t KW>
Tensor<Shape<H - KH + 1, W - KW + 1>> corr2d(const Tensor<Shape<H, W>>& X, const Tensor<Shape<KH, KW>>& K) {
  static_assert(KH >= 1 && KW >= 1 && KH <= H && KW <= W, "ctnn::corr2d: the kernel must fit inside the input");
  constexpr kernels::Conv2dGeometry g{1, H, W, 1, KH, KW, 1, 1, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros};
  Tensor<Shape<H - KH + 1, W - KW + 1>> Y;
  Tensor<Shape<kernels::conv2d_scratch_floats<g> + 1>> scratch;
  kernels::conv2d_forward<g, false, kernels::identity_op>(X.data(), K.data(), nullptr, Y.data(), 1, scratch.data());
  return Y;
}

}  // namespace ctnn::nn

namespace ctnn {
using nn::corr2d;
}  // namespace ctnn
