// ctnn::freeze(net) — torch.jit.freeze for inference: a FrozenModel, a snapshot of the model.
//
// The snapshot copies the network's parameters and packs every Linear's weight and bias for the
// GEMM once (kernels::prepack_linear), so that forward does no packing per call: at batch 1 the
// packed path then beats the dot path (which reduces along k), and at larger batches the pack per
// call is gone. Like torch.jit.freeze, the snapshot is independent of the model: training or
// loading into the model afterwards changes nothing in it (freeze again to take the new values).
// It has forward and read-only access to its layers; no backward, no mutable parameters.
//
//   ctnn::Model<MLP, ctnn::Shape<20>> net;   // ... trained
//   auto frozen = ctnn::freeze(net);
//   auto y = frozen.forward(X);              // a view into the snapshot's workspace, as Model's
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "ctnn/model.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn {

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

  /// The snapshot of `model`: its parameters copied, every Linear prepacked.
  explicit FrozenModel(const Base& model) : Base(model) {
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

/// torch.jit.freeze(net): a FrozenModel snapshot of `model` for fast inference.
template <class Net, class In>
FrozenModel<Net, In> freeze(const Model<Net, In>& model) {
  return FrozenModel<Net, In>(model);
}

}  // namespace ctnn
