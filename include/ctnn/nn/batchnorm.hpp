// nn::BatchNorm1d / BatchNorm2d / LazyBatchNorm1d / LazyBatchNorm2d — torch.nn's.
//
//   y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]
//   BatchNorm2d: x [N, C, H, W];  BatchNorm1d: x [N, C] or [N, C, L];  weight, bias: [C]
//
// Training mode (and always with track_running_stats = false): mean and the biased var are the
// batch's, over N and the spatial extent (M values per channel; M = 1 is an error, as in
// PyTorch), and running_mean / running_var move towards mean and the unbiased var by `momentum`
// (num_batches_tracked counts the batches). Evaluation mode: running_mean / running_var.
// Backward is exact in both: in training mode the gradient flows through the batch statistics,
//   dx = weight invstd / M (M g - sum g - xhat sum(g xhat)),  xhat = (x - mean) invstd.
// The buffers are nn::Buffer / nn::LongBuffer: in state_dict with PyTorch's keys and dtypes, never
// seen by an optimizer. A following activation runs in BatchNorm's pass (forward_fused<Op>).
//
// Statistics are the whole batch's also when Model splits it across threads: each slice adds its
// samples' per-channel sums into rows that every slice sums in sample order
// (core/slices.hpp), so 2 threads give 1 thread's numbers exactly.
//
// The passes (detail::batchnorm_statistics, detail::batchnorm_backward) are functions of a
// BatchNormView, the layer's layout and tensors at run time: compiled once for every BatchNorm of
// a program, where a template per shape and layer cost ResNet-18's training unit 1.5 s.
//
// Rules (compile errors, docs/errors.md): ERROR_input_rank_not_3 (BatchNorm2d),
// ERROR_batchnorm1d_input_rank (BatchNorm1d on a sample that is not [C] or [C, L]),
// ERROR_zero_sized_dimension (num_features = 0), ERROR_batchnorm_num_features_mismatch.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <variant>

#include "ctnn/core/slices.hpp"
#include "ctnn/kernels/batchnorm.hpp"
#include "ctnn/nn/module.hpp"
#include "ctnn/nn/mode.hpp"

namespace ctnn::nn {

/// torch.nn.BatchNorm2d's arguments, in its order (num_features is inferred by the Lazy forms).
struct BatchNormOptions {
  std::size_t num_features = 0;
  float eps = 1e-5f;
  float momentum = 0.1f;
  bool affine = true;
  bool track_running_stats = true;
};

namespace detail {

/// A BatchNorm layer as its passes see it: the layout and its tensors (null where affine or
/// track_running_stats is off). The passes below take one, so every BatchNorm shares them.
struct BatchNormView {
  kernels::ChannelLayout layout;
  float eps, momentum;
  const float *weight, *bias;
  float *weight_grad, *bias_grad;
  float *running_mean, *running_var;
  std::int64_t* num_batches_tracked;
};

/// Scratch of a C-channel BatchNorm: the sums over the batch, one sample's row and this call's
/// sums (2C doubles each), then, from batchnorm_floats_at(C), 3C floats (forward's scale and
/// shift; backward's factor and sums).
constexpr std::size_t batchnorm_floats_at(std::size_t C) { return 3 * (2 * C) * 2; }
constexpr std::size_t batchnorm_scratch_floats(std::size_t C) { return batchnorm_floats_at(C) + 3 * C; }

/// check_batch_size's exception, out of line.
[[noreturn]] inline void throw_batchnorm_batch_size(const std::string& layer, const std::string& path, std::size_t n,
                                                    const std::string& sample) {
  throw std::invalid_argument("ctnn::nn::" + layer + " at " + path +
                              ": expected more than 1 value per channel when training, got input size [" +
                              std::to_string(n) + ", " + sample.substr(1));
}

/// forward's statistics: mean[C], invstd[C] (in stats, then the batch flag), and the per-channel
/// scale s = weight invstd and shift t = bias - mean s, so that y = x s + t: returns s, with t
/// after it (in scratch). `batch`: with this batch's statistics (N: the whole batch's samples),
/// updating the running ones when `update_running` (training mode, slice 0); else with the
/// running ones.
inline const float* batchnorm_statistics(const BatchNormView& v, bool batch, bool update_running, std::size_t N,
                                         const float* x, std::size_t n, float* stats, float* scratch) {
  const std::size_t C = v.layout.C, Sp = v.layout.Sp;
  float *mean = stats, *invstd = stats + C;
  double *total = reinterpret_cast<double*>(scratch), *row = total + 2 * C;
  float *s = scratch + batchnorm_floats_at(C), *t = s + C;
  if (batch) {
    const double M = static_cast<double>(N * Sp);
    ctnn::detail::reduce_over_batch(n, C, total, row, [&](std::size_t i, double* r) {
      kernels::channel_sums(v.layout, x + i * v.layout.size(), r);
    });
    for (std::size_t c = 0; c < C; ++c) mean[c] = static_cast<float>(total[c] / M);
    ctnn::detail::reduce_over_batch(n, C, total, row, [&](std::size_t i, double* r) {
      kernels::channel_sq_devs(v.layout, x + i * v.layout.size(), mean, r);
    });
    for (std::size_t c = 0; c < C; ++c) invstd[c] = static_cast<float>(1.0 / std::sqrt(total[c] / M + v.eps));
    if (v.running_mean && update_running) {
      for (std::size_t c = 0; c < C; ++c) {
        const float unbiased = static_cast<float>(total[c] / (M - 1));
        v.running_mean[c] = (1 - v.momentum) * v.running_mean[c] + v.momentum * mean[c];
        v.running_var[c] = (1 - v.momentum) * v.running_var[c] + v.momentum * unbiased;
      }
      ++*v.num_batches_tracked;
    }
  } else {
    for (std::size_t c = 0; c < C; ++c) {
      mean[c] = v.running_mean[c];
      invstd[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(v.running_var[c]) + v.eps));
    }
  }
  stats[2 * C] = batch ? 1.0f : 0.0f;
  for (std::size_t c = 0; c < C; ++c) {
    s[c] = (v.weight ? v.weight[c] : 1.0f) * invstd[c];
    t[c] = (v.bias ? v.bias[c] : 0.0f) - mean[c] * s[c];
  }
  return s;
}

/// backward: g = Op'(y) dy (written over dy, in gact, as the rows are made; Op: the activation
/// fused into the forward), with the statistics forward left after the n samples' outputs y in act,
///   dbias += sum g,  dweight += sum g xhat   (this call's samples: Model adds the slices')
///   dx = weight invstd / M (M g - sum g - xhat sum(g xhat))   with the batch's statistics
///   dx = g weight invstd                                       with the running ones
template <class Op>
void batchnorm_backward(const BatchNormView& v, const float* x, float* dx, std::size_t n, const float* act, float* g,
                        float* scratch) {
  const std::size_t C = v.layout.C, Sp = v.layout.Sp;
  const float* stats = act + n * v.layout.size();
  const float *mean = stats, *invstd = stats + C;
  const bool batch = stats[2 * C] != 0.0f;
  double *total = reinterpret_cast<double*>(scratch), *row = total + 2 * C, *local = row + 2 * C;
  // k, then sums: sum g [C] and sum g xhat [C], as floats (where forward kept s and t)
  float *k = scratch + batchnorm_floats_at(C), *sums = k + C;
  if (!v.weight_grad && !dx) return;
  // This call's sums (for the parameters) and, with the batch's statistics, the whole batch's.
  std::fill_n(local, 2 * C, 0.0);
  auto rows = [&](std::size_t i, double* r) {
    const std::size_t o = i * v.layout.size();
    kernels::channel_grad_sums<Op>(v.layout, act + o, g + o, x + o, mean, invstd, r);
    for (std::size_t c = 0; c < 2 * C; ++c) local[c] += r[c];
  };
  if (batch && dx) {
    ctnn::detail::reduce_over_batch(n, 2 * C, total, row, rows);
  } else {
    for (std::size_t i = 0; i < n; ++i) rows(i, row);
  }
  if (v.weight_grad) {
    for (std::size_t c = 0; c < C; ++c) {
      v.bias_grad[c] += static_cast<float>(local[c]);
      v.weight_grad[c] += static_cast<float>(local[C + c]);
    }
  }
  if (!dx) return;
  if (batch) {
    const float M = static_cast<float>(ctnn::detail::whole_batch(n) * Sp);
    for (std::size_t c = 0; c < C; ++c) {
      k[c] = (v.weight ? v.weight[c] : 1.0f) * invstd[c] / M;
      sums[c] = static_cast<float>(total[c]);
      sums[C + c] = static_cast<float>(total[C + c]);
    }
    kernels::batch_stats_input_grad(v.layout, g, x, mean, invstd, k, sums, sums + C, M, dx, n);
  } else {
    for (std::size_t c = 0; c < C; ++c) k[c] = (v.weight ? v.weight[c] : 1.0f) * invstd[c];
    kernels::scale_input_grad(v.layout, g, k, dx, n);
  }
}

}  // namespace detail

/// The bound BatchNorm on per-sample shape S = [C, *] (Dim: 1 or 2, for its name).
template <class S, BatchNormOptions Opt, int Dim, class Path>
struct BoundBatchNorm : Module<BoundBatchNorm<S, Opt, Dim, Path>>, TrainingMode {
  static constexpr std::size_t C = S::dims[0];
  static constexpr std::size_t Sp = S::size / C;  // values per channel of one sample
  static constexpr bool affine = Opt.affine, track_running_stats = Opt.track_running_stats;
  static constexpr float eps = Opt.eps, momentum = Opt.momentum;
  using input_shape = S;
  using output_shape = S;

  static constexpr std::size_t parameter_count = affine ? 2 * C : 0;
  /// The output, then (once, in the n samples' reservation) the statistics backward uses:
  /// mean[C], invstd[C] and whether they were the batch's.
  static constexpr std::size_t stats_floats = 2 * C + 1;
  static constexpr std::size_t activation_floats = S::size + stats_floats;
  static constexpr std::size_t scratch_floats = detail::batchnorm_scratch_floats(C);
  static constexpr std::ptrdiff_t output_offset = 0;
  /// Doubles per sample a split batch's reductions share (core/slices.hpp; Model sizes them).
  static constexpr std::size_t batch_row_doubles = 2 * C;

  [[no_unique_address]] std::conditional_t<affine, Parameter<Shape<C>>, std::monostate> weight, bias;
  [[no_unique_address]] std::conditional_t<track_running_stats, Buffer<Shape<C>>, std::monostate> running_mean,
      running_var;
  [[no_unique_address]] std::conditional_t<track_running_stats, LongBuffer, std::monostate> num_batches_tracked;

  /// torch's reset_parameters: weight 1, bias 0, and the running statistics reset.
  void reset_parameters(Generator&) {
    if constexpr (affine) {
      std::fill(weight.begin(), weight.end(), 1.0f);
      std::fill(bias.begin(), bias.end(), 0.0f);
    }
    reset_running_stats();
  }
  /// torch's reset_running_stats(): running_mean 0, running_var 1, num_batches_tracked 0.
  void reset_running_stats() {
    if constexpr (track_running_stats) {
      std::fill(running_mean.begin(), running_mean.end(), 0.0f);
      std::fill(running_var.begin(), running_var.end(), 1.0f);
      num_batches_tracked.value = 0;
    }
  }

  /// Whether forward normalizes with the batch's statistics (training mode, or no running ones).
  bool uses_batch_stats() const { return training() || !track_running_stats; }
  /// Throws, as PyTorch, when a batch of n gives one value per channel in training mode (Model
  /// checks every BatchNorm before a forward changes anything).
  void check_batch_size(std::size_t n) const {
    if (uses_batch_stats() && n * Sp <= 1)
      detail::throw_batchnorm_batch_size(type_name(), detail::path_string<Path>::get(), n, S::str());
  }

  // forward: y = Op(x s + t) with s = weight invstd, t = bias - mean s (Op: a following activation).
  template <class Op>
  const float* forward_fused(const float* x, std::size_t n, float* act, float* scratch) const {
    const bool batch = uses_batch_stats();
    std::size_t N = n;
    if (batch) {
      N = ctnn::detail::whole_batch(n);
      check_batch_size(N);
    }
    auto& self = const_cast<BoundBatchNorm&>(*this);  // the running statistics move in training mode
    const float* s = detail::batchnorm_statistics(self.view(), batch, training() && ctnn::detail::first_slice(), N, x,
                                                  n, act + n * S::size, scratch);
    kernels::scale_shift<Op>(layout, x, s, s + C, act, n);
    return act;
  }
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    return forward_fused<kernels::identity_op>(x, n, act, scratch);
  }

  // backward: detail::batchnorm_backward, with the activation's gradient in its first pass.
  template <class Op>
  void backward_fused(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    detail::batchnorm_backward<Op>(view(), x, dx, n, act, gact, scratch);
  }
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    backward_fused<kernels::identity_op>(x, dx, n, act, gact, scratch);
  }

  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    if constexpr (affine) {
      f(prefix + "weight", weight);
      f(prefix + "bias", bias);
    }
  }
  /// state_dict's walk: weight, bias, running_mean, running_var, num_batches_tracked (PyTorch's).
  template <class Name, class F>
  void for_each_state(const Name& prefix, F&& f) {
    for_each_parameter(prefix, f);
    if constexpr (track_running_stats) {
      f(prefix + "running_mean", running_mean);
      f(prefix + "running_var", running_var);
      f(prefix + "num_batches_tracked", num_batches_tracked);
    }
  }
  template <class F>
  void apply(F&& f) {
    f(*this);
  }
  static std::string type_name() { return Dim == 1 ? "BatchNorm1d" : "BatchNorm2d"; }
  void print(std::ostream& os, int) const {
    os << type_name() << '(' << C << ", eps=" << detail::float_repr(eps)
       << ", momentum=" << detail::float_repr(momentum) << ", affine=" << (affine ? "True" : "False")
       << ", track_running_stats=" << (track_running_stats ? "True" : "False") << ')';
  }

 private:
  static constexpr kernels::ChannelLayout layout{C, Sp};
  detail::BatchNormView view() {
    detail::BatchNormView v{layout, eps, momentum, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    if constexpr (affine) {
      v.weight = weight.data();
      v.bias = bias.data();
      v.weight_grad = weight.grad.data();
      v.bias_grad = bias.grad.data();
    }
    if constexpr (track_running_stats) {
      v.running_mean = running_mean.data();
      v.running_var = running_var.data();
      v.num_batches_tracked = &num_batches_tracked.value;
    }
    return v;
  }
};

namespace detail {
inline constexpr std::size_t lazy_num_features = static_cast<std::size_t>(-1);

template <class In, class Path, BatchNormOptions Opt, int Dim, bool Lazy>
struct bind_batchnorm {
  static constexpr bool rank_ok = Dim == 2 ? In::rank == 3 : (In::rank == 1 || In::rank == 2);
  static constexpr std::size_t inferred = [] {
    if constexpr (In::rank == 0) return std::size_t{0};
    else return In::dims[0];
  }();
  static constexpr std::size_t features = Lazy ? inferred : Opt.num_features;
  // clang-format off: the first failing rule is the one error
  using checked = rules<
      rule<Dim == 2 && !rank_ok, ERROR_input_rank_not_3<Path, In>>,
      rule<Dim == 1 && !rank_ok, ERROR_batchnorm1d_input_rank<Path, In>>,
      rule<(rank_ok && features == 0), ERROR_zero_sized_dimension<Path, num_features<features>>>,
      rule<(rank_ok && features != 0 && features != inferred),
           ERROR_batchnorm_num_features_mismatch<Path, num_features<features>, inferred_num_features<inferred>>>>;
  // clang-format on
  using type = std::conditional_t<checked::ok, BoundBatchNorm<In, Opt, Dim, Path>, PoisonedLayer>;
};

template <class S, BatchNormOptions Opt, int Dim, class Path>
struct is_batchnorm_impl<BoundBatchNorm<S, Opt, Dim, Path>> : std::true_type {};

}  // namespace detail

/// torch.nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats) on [N, C, H, W].
template <BatchNormOptions Opt>
struct BatchNorm2d {
  template <class In, class Path>
  using bind = typename detail::bind_batchnorm<In, Path, Opt, 2, false>::type;
};
/// torch.nn.BatchNorm1d on [N, C] or [N, C, L].
template <BatchNormOptions Opt>
struct BatchNorm1d {
  template <class In, class Path>
  using bind = typename detail::bind_batchnorm<In, Path, Opt, 1, false>::type;
};
/// torch.nn.LazyBatchNorm2d: num_features is the input's C (Opt's other fields apply).
template <BatchNormOptions Opt = BatchNormOptions{}>
struct LazyBatchNorm2d {
  template <class In, class Path>
  using bind = typename detail::bind_batchnorm<In, Path, Opt, 2, true>::type;
};
/// torch.nn.LazyBatchNorm1d
template <BatchNormOptions Opt = BatchNormOptions{}>
struct LazyBatchNorm1d {
  template <class In, class Path>
  using bind = typename detail::bind_batchnorm<In, Path, Opt, 1, true>::type;
};

}  // namespace ctnn::nn
