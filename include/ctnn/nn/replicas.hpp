// detail::Replicas<Net>: the copies of a network that Model's split backward runs slices 1..T-1
// on — PyTorch DDP's replicas, inside one process.
//
// Replica r (slice r + 1's network) is a copy of the network made once per thread count; its
// storage is kept, so later steps allocate nothing. Its parameters and buffers are not copies:
// each reads the network's own values in place (detail::tensor_storage::share, renewed at each
// prepare in case a tensor of the network has been given new storage), so a replica always sees
// what DDP would broadcast to it — every value that a built-in layer's backward reads beyond its
// forward's record — without a weight-sized copy per step. refresh gives it the mode (and copies
// any other state a layer lists). Its .grad are its own and start at zero; after the slices,
// every thread adds its part of each replica gradient into the network's and zeroes it
// (take_grads), replica 0's first, as one thread would. A backward that throws leaves partial
// sums, and the next prepare zeroes them. A layer that holds its slices' weight gradients (one of
// Model's SharingLayer list, nn/shared_weights.hpp) is linked to the network's at each prepare
// and its weight.grad is left out: Model folds what the slices held into the network's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ctnn/core/threads.hpp"
#include "ctnn/nn/mode.hpp"
#include "ctnn/nn/module.hpp"
#include "ctnn/nn/shared_weights.hpp"

namespace ctnn::detail {

template <class Net>
class Replicas {
 public:
  /// Replicas 0..T-2 exist, read the network's current storage, and their gradients are zero
  /// (copies of `net` made on first need).
  /// `sharing`: the network's layers whose slices share weights (Model's list).
  void prepare(Net& net, std::size_t T, const std::vector<SharingLayer>& sharing) {
    while (nets_.size() + 1 < T) add(net, sharing);
    values_.clear();
    for (std::size_t r = 0; r + 1 < T; ++r) link(net, r, sharing);
    if (!zero_)  // a backward that threw left partial sums
      for (const auto& g : grads_) std::fill_n(g.replica, g.size, 0.0f);
    zero_ = false;  // until take_grads has taken what the coming backward adds
  }
  /// Replica r in the network's mode, with any state it does not share copied (run by slice r + 1's thread).
  Net& refresh(std::size_t r, bool training) {
    for (const auto& v : values_)
      if (v.r == r) std::copy_n(v.from, v.size, v.to);
    nn::set_training(*nets_[r], training);
    return *nets_[r];
  }
  /// Thread t of T adds its part of replicas 0..T-2's gradients into the network's and zeroes them.
  void take_grads(std::size_t T, std::size_t t) {
    for (const auto& g : grads_) {
      if (g.r + 1 >= T) continue;
      const auto [b, m] = elementwise_part(g.size, T, t);
      for (std::size_t i = b; i < b + m; ++i) {
        g.model[i] += g.replica[i];
        g.replica[i] = 0.0f;
      }
    }
  }
  /// take_grads has run on every thread: the replicas' gradients are zero again.
  void taken() { zero_ = true; }

 private:
  void add(Net& net, const std::vector<SharingLayer>& sharing) {
    const std::size_t r = nets_.size();
    nets_.push_back(std::make_unique<Net>(net));
    nets_.back()->for_each_parameter(nn::unnamed, [&](const std::string&, auto& p) {
      float* g = p.grad.data();
      const auto held = [&](const SharingLayer& s) { return s.weight_grad(s.in(*nets_.back())) == g; };
      if (std::any_of(sharing.begin(), sharing.end(), held)) return;  // the layer holds it elsewhere
      const bool listed = std::any_of(grads_.begin(), grads_.end(), [&](const Grad& e) { return e.replica == g; });
      if (!listed) grads_.push_back({r, nullptr, g, p.grad.numel()});  // once if shared; link sets .model
      std::fill_n(g, p.grad.numel(), 0.0f);
    });
  }
  /// Points replica r's parameters and buffers at the network's storage, its gradient entries at
  /// the network's .grad and its layers that share weights at the network's, as they are now (a
  /// tensor moved into the network, `weight = {...}`, brings new floats; a moved model, a new
  /// network object); lists any other state for refresh to copy. One walk of each network (the
  /// state_dict walk, which holds every parameter), without names: after the first step, no
  /// allocation.
  void link(Net& net, std::size_t r, const std::vector<SharingLayer>& sharing) {
    for (const auto& s : sharing) s.link(s.in(*nets_[r]), s.in(net));
    states_.clear();
    nn::for_each_state(net, nn::unnamed, [&](const std::string&, auto& x) { states_.push_back(&x); });
    std::size_t i = 0;
    nn::for_each_state(*nets_[r], nn::unnamed, [&](const std::string&, auto& x) {
      using X = std::remove_cvref_t<decltype(x)>;
      X& own = *static_cast<X*>(states_[i++]);  // the same walk over the same type: x's twin
      if constexpr (is_tensor<X>) tensor_storage::share(x, own);
      else if constexpr (requires { x.data(); }) values_.push_back({r, own.data(), x.data(), x.numel()});
      if constexpr (requires { x.grad.data(); })  // a parameter
        for (auto& g : grads_)
          if (g.replica == x.grad.data()) g.model = own.grad.data();
    });
  }

  struct Grad {  // a parameter's .grad in the network and in replica r
    std::size_t r;
    float* model;
    float* replica;
    std::size_t size;
  };
  struct Values {  // the values of a state entry that is not a tensor, copied into replica r
    std::size_t r;
    const float* from;
    float* to;
    std::size_t size;
  };
  std::vector<std::unique_ptr<Net>> nets_;
  std::vector<Grad> grads_;
  std::vector<Values> values_;
  std::vector<void*> states_;  // link's walk: the network's state objects, in order
  bool zero_ = true;
};

}  // namespace ctnn::detail
