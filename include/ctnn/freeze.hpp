// ctnn::freeze(net) — torch.jit.freeze for inference: a FrozenModel, a snapshot of the model.
//
// The snapshot copies the network's parameters and packs every Linear's weight and bias for the
// GEMM once (kernels::prepack_linear), so that forward does no packing per call: at batch 1 the
// packed path then beats the dot path (which reduces along k), and at larger batches the pack per
// call is gone. Like torch.jit.freeze, the snapshot is independent of the model: training or
// loading into the model afterwards changes nothing in it (freeze again to take the new values).
// It has forward and read-only access to its layers; no backward, no mutable parameters.
//
// The snapshot is in evaluation mode, and every BatchNorm (with running statistics) that directly
// follows a Conv2d or Linear inside a Sequential is folded into that layer, as
// torch.fx's fuse_conv_bn does: with s = weight / sqrt(running_var + eps) and
// t = bias - running_mean s, the producer's weight rows are scaled by s and t goes into its bias.
// The BatchNorm is left as the identity (mean 0, variance 1 - eps, weight 1, bias 0) — or, for a
// producer without a bias (ResNet's convolutions), as the shift t alone — so it still runs one
// elementwise pass (with the activation after it fused in); dropping that pass needs the producer
// to take the shift in its epilogue, which is a change of the network's type.
//
//   ctnn::Model<MLP, ctnn::Shape<20>> net;   // ... trained
//   auto frozen = ctnn::freeze(net);
//   auto y = frozen.forward(X);              // a view into the snapshot's workspace, as Model's
#pragma once

#include <cmath>
#include <cstddef>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "ctnn/model.hpp"
#include "ctnn/nn/batchnorm.hpp"
#include "ctnn/nn/conv2d.hpp"
#include "ctnn/nn/linear.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn {

namespace detail {

/// Folds BatchNorm `bn` into the Conv2d or Linear before it (when it has running statistics and
/// normalizes the producer's output channels).
template <class P, class B>
void fold_into(P& producer, B& bn) {
  if constexpr (B::track_running_stats && P::output_shape::dims[0] == B::C &&
                (nn::is_conv2d<P> || P::output_shape::rank == 1)) {
    constexpr std::size_t C = B::C, per_channel = decltype(producer.weight)::shape_type::size / C;
    for (std::size_t c = 0; c < C; ++c) {
      double gamma = 1.0, beta = 0.0;
      if constexpr (B::affine) gamma = bn.weight[c], beta = bn.bias[c];
      const double s = gamma / std::sqrt(double(bn.running_var[c]) + B::eps);
      const double t = beta - double(bn.running_mean[c]) * s;
      for (std::size_t j = 0; j < per_channel; ++j)
        producer.weight.data()[c * per_channel + j] =
            static_cast<float>(producer.weight.data()[c * per_channel + j] * s);
      if constexpr (P::has_bias) {
        producer.bias[c] = static_cast<float>(producer.bias[c] * s + t);
        bn.running_mean[c] = 0.0f;
      } else {
        bn.running_mean[c] = static_cast<float>(-t);  // the BatchNorm adds t: (x - (-t)) * 1
      }
      bn.running_var[c] = 1.0f - B::eps;
      if constexpr (B::affine) bn.weight[c] = 1.0f, bn.bias[c] = 0.0f;
    }
  }
}

/// Folds layer I+1 of `seq` into layer I when they are Conv2d/Linear then BatchNorm (see above).
template <std::size_t I, class Seq>
void fold_batchnorm_pair(Seq& seq) {
  auto& producer = seq.template get<I>();
  auto& bn = seq.template get<I + 1>();
  using P = std::remove_cvref_t<decltype(producer)>;
  using B = std::remove_cvref_t<decltype(bn)>;
  if constexpr ((nn::is_conv2d<P> || nn::is_linear<P>) && nn::is_batchnorm<B>) fold_into<P, B>(producer, bn);
}
/// Folds every BatchNorm right after a Conv2d or Linear in every Sequential of `net`.
template <class Net>
void fold_batchnorms(Net& net) {
  net.apply([](auto& layer) {
    using L = std::remove_cvref_t<decltype(layer)>;
    if constexpr (nn::is_sequential<L>)
      if constexpr (L::L >= 2)
        [&]<std::size_t... I>(std::index_sequence<I...>) {
          (fold_batchnorm_pair<I>(layer), ...);
        }(std::make_index_sequence<L::L - 1>{});
  });
}

}  // namespace detail

template <class Net, class In>
class FrozenModel : private Model<Net, In> {
  using Base = Model<Net, In>;

 public:
  using Base::batched_output;
  using Base::input_shape;
  using Base::output_shape;
  using Base::parameter_count;
  using typename Base::input_shape_type;
  using typename Base::network_type;
  using typename Base::output_shape_type;

  /// The snapshot of `model`: its parameters copied, in evaluation mode, each BatchNorm after a
  /// Conv2d or Linear folded into it, every Linear prepacked.
  explicit FrozenModel(const Base& model) : Base(model) {
    Base::eval();
    detail::fold_batchnorms(Base::network());
    Base::apply([](auto& layer) {
      if constexpr (nn::is_linear<decltype(layer)>) layer.prepack();
    });
  }

  // Forward, threads and the workspace exactly as Model's (see model.hpp).
  using Base::forward;
  using Base::operator();
  using Base::num_threads;
  using Base::reserve;
  using Base::set_num_threads;
  using Base::threads_for_batch;
  using Base::training;

  /// Read-only access to the layers and the snapshot's parameters.
  template <std::size_t I>
  const auto& get() const {
    return Base::template get<I>();
  }
  template <class C>
    requires requires { C::value; }
  const auto& operator[](C c) const {
    return Base::operator[](c);
  }
  const network_type& network() const { return Base::network(); }
  std::string summary() const { return Base::summary(); }
  friend std::ostream& operator<<(std::ostream& os, const FrozenModel& m) { return os << static_cast<const Base&>(m); }
};

/// torch.jit.freeze(net.eval()): a FrozenModel snapshot of `model` for fast inference.
template <class Net, class In>
FrozenModel<Net, In> freeze(const Model<Net, In>& model) {
  return FrozenModel<Net, In>(model);
}

}  // namespace ctnn
