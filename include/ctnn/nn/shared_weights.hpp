// nn::SharedWeights: a layer's weight-sized operands prepared once for the slices of a batch that
// Model splits across threads, and the slices' weight gradients held until Model folds them
// (Conv2d's regions and dense forms: kernels/conv2d/shared.hpp). detail::SharingLayer: such a
// layer's place in its network and its hooks (reserve_slices, fold_weight_grads, link_shared),
// which Model and nn/replicas.hpp call.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "ctnn/core/tensor.hpp"

namespace ctnn::nn {

/// A conv's weights as its form prepares them (kernels/conv2d/shared.hpp), shared, and its weight
/// gradients held, in a batch split across threads: in each pass every slice prepares its part
/// of the weights in the network's buffer (shared; a thread's copy of the network is linked to
/// it), the slices meet at their barrier and all read them; each slice leaves its weight gradient
/// in its own held buffer, and Model's threads fold those into dW (held). Alone (one slice, or a
/// layer called directly), a forward may keep what it prepared for its backward (keep, kept).
/// A copy starts with nothing prepared, kept or linked. Buffers are allocated by the constructor
/// (where the layer keeps), by reserve, and by a copy's first keep.
class SharedWeights {
 public:
  SharedWeights(std::size_t prepared, std::size_t held, bool keeps) : prepared_floats_(prepared), held_floats_(held) {
    if (keeps) prepared_ = ctnn::detail::allocate_floats(prepared);
  }
  SharedWeights(const SharedWeights& o) : prepared_floats_(o.prepared_floats_), held_floats_(o.held_floats_) {}
  SharedWeights& operator=(const SharedWeights&) {
    kept_ = false;
    return *this;
  }
  SharedWeights(SharedWeights&&) = default;
  SharedWeights& operator=(SharedWeights&&) = default;

  /// Room for T slices' held gradients and the shared weights (Model, before a split forward).
  void reserve(std::size_t T) {
    if (!prepared_) prepared_ = ctnn::detail::allocate_floats(prepared_floats_);
    while (held_.size() < T) held_.push_back(ctnn::detail::allocate_floats(held_floats_));
    while (pointers_.size() < T) pointers_.push_back(nullptr);
    for (std::size_t t = 0; t < T; ++t) pointers_[t] = held_[t].get();
    kept_ = false;
  }
  /// Whether Model reserved this layer for a split of T slices (for the network's, or, in a
  /// thread's copy, the network's it is linked to). Not where Model's walks do not reach the
  /// layer (a user's layer whose apply() skips it): then the slices share nothing and meet
  /// nowhere, each preparing its own weights and adding its own weight gradient, as the
  /// replicas' other gradients are added.
  bool ready(std::size_t T) const { return source().prepared_ && source().held_.size() >= T; }
  /// Where the slices of a split batch prepare the weights and read them: the network's (a
  /// thread's copy uses the network it is linked to). Each slice writes its own part.
  float* shared() const { return source().prepared_.get(); }
  /// Slice t's held weight gradient, in the network's buffers.
  float* held(std::size_t t) const { return source().held_[t].get(); }
  /// The held gradients of slices 0..T-1, in order.
  float* const* held() const { return pointers_.data(); }

  /// A forward alone keeps its prepared weights here for its backward.
  float* keep() {
    if (!prepared_) prepared_ = ctnn::detail::allocate_floats(prepared_floats_);
    kept_ = true;
    return prepared_.get();
  }
  /// A forward alone that keeps nothing: its backward prepares its own.
  void forget() { kept_ = false; }
  /// What the last forward alone kept (null: nothing).
  float* kept() const { return kept_ ? prepared_.get() : nullptr; }

  /// A thread's copy of the network reads the network's buffers (Replicas, at every backward).
  void link(const SharedWeights& network) { network_ = &network; }

 private:
  const SharedWeights& source() const { return network_ ? *network_ : *this; }
  std::size_t prepared_floats_, held_floats_;
  ctnn::detail::aligned_floats prepared_;
  std::vector<ctnn::detail::aligned_floats> held_;
  std::vector<float*> pointers_;
  bool kept_ = false;
  const SharedWeights* network_ = nullptr;
};

}  // namespace ctnn::nn

namespace ctnn::detail {

/// A layer whose slices share weights (it has reserve_slices), as Model's first walk over its
/// network finds it: its offset from the network object, the same in every copy of the network
/// (a thread's replica, a moved or copied model), and its hooks. The passes of a step over such
/// layers then walk a short list, not the network's type tree again.
struct SharingLayer {
  std::ptrdiff_t offset;
  void (*reserve)(void* layer, std::size_t T);
  void (*fold)(void* layer, std::size_t t, std::size_t T);
  void (*link)(void* replica_layer, void* network_layer);
  float* (*weight_grad)(void* layer);

  template <class Net, class L>
  static SharingLayer of(Net& net, L& layer) {
    return {reinterpret_cast<char*>(std::addressof(layer)) - reinterpret_cast<char*>(std::addressof(net)),
            [](void* l, std::size_t T) { static_cast<L*>(l)->reserve_slices(T); },
            [](void* l, std::size_t t, std::size_t T) { static_cast<L*>(l)->fold_weight_grads(t, T); },
            [](void* l, void* network) { static_cast<L*>(l)->link_shared(*static_cast<L*>(network)); },
            [](void* l) { return static_cast<L*>(l)->weight.grad.data(); }};
  }
  /// This layer in `net` (the network, or a copy of it).
  template <class Net>
  void* in(Net& net) const {
    return reinterpret_cast<char*>(std::addressof(net)) + offset;
  }
};

}  // namespace ctnn::detail
