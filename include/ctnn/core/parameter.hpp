// nn::Parameter<S> (a tensor with its gradient), ctnn::StateDict (name -> tensor, in order), and
// ctnn::NamedParameters (name -> ParameterRef: a tensor view with a view of its .grad), what
// state_dict() and named_parameters() return; nn::Buffer<S> and nn::LongBuffer, the state a layer
// keeps that is not learned (in state_dict, not in named_parameters).
//
// They sit in core/ because everything above the kernels speaks them: layers (nn/) own
// Parameters, expressions (expr/) read and write them as leaves, and io/ and optim/ walk a
// StateDict. Keeping them here lets expr/ and io/ depend on core/ alone.
//
// The namespaces are the public spellings and stay as they were: ctnn::StateDict and
// ctnn::nn::Parameter (PyTorch's torch.nn.Parameter; its demangled name, printed in the guide,
// is ctnn::nn::Parameter<ctnn::Shape<...>>).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ctnn/core/tensor.hpp"

namespace ctnn {

namespace detail {
/// (name, V) pairs in registration order, looked up by name: what StateDict and NamedParameters
/// share (PyTorch's OrderedDict).
template <class V>
class named_items {
 public:
  using value_type = std::pair<std::string, V>;

  void add(std::string name, V v) { items_.emplace_back(std::move(name), std::move(v)); }
  std::size_t size() const { return items_.size(); }
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (const auto& [name, v] : items_) k.push_back(name);
    return k;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 protected:
  /// The entry named `name`, or null.
  const V* find(const std::string& name) const {
    for (const auto& [n, v] : items_)
      if (n == name) return &v;
    return nullptr;
  }
  std::vector<value_type> items_;
};
}  // namespace detail

/// (name, tensor) pairs in registration order, like PyTorch's OrderedDict state_dict.
class StateDict : public detail::named_items<TensorRef> {
 public:
  /// sd["0.weight"]; an unknown key throws std::out_of_range naming it.
  const TensorRef& operator[](const std::string& name) const {
    const TensorRef* t = find(name);
    if (!t) throw std::out_of_range("ctnn::StateDict: no tensor named '" + name + "'");
    return *t;
  }
  const TensorRef& at(const std::string& name) const { return (*this)[name]; }

  /// OrderedDict([('weight', tensor(...)), ('bias', tensor(...))]), as PyTorch prints it.
  friend std::ostream& operator<<(std::ostream& os, const StateDict& sd) {
    os << "OrderedDict([";
    for (std::size_t i = 0; i < sd.items_.size(); ++i)
      os << (i ? ", " : "") << "('" << sd.items_[i].first << "', " << sd.items_[i].second << ')';
    return os << "])";
  }
};

namespace nn {

/// The prefix of a parameter walk that needs no names (zero_grad, the optimizers' steps):
/// appending to it gives it back and it reads as the empty name, so a deep network's walk builds
/// no strings (a name past std::string's 15 inline characters would allocate on every step).
/// A layer's for_each_parameter / for_each_state takes either this or a std::string prefix.
struct Unnamed {
  operator const std::string&() const {
    static const std::string empty;
    return empty;
  }
  friend Unnamed operator+(Unnamed, const std::string&) { return {}; }
  friend Unnamed operator+(Unnamed, const char*) { return {}; }
};
inline constexpr Unnamed unnamed{};

/// A learnable tensor: its values and its gradient (zero until a backward pass fills it).
template <class S>
struct Parameter : Tensor<S> {
  using Tensor<S>::Tensor;
  using Tensor<S>::operator=;
  Tensor<S> grad;
};

/// A tensor a layer keeps that is not learned (torch's register_buffer: BatchNorm's
/// running_mean): in state_dict and save/load, never walked by an optimizer, no gradient.
template <class S>
struct Buffer : Tensor<S> {
  using Tensor<S>::Tensor;
  using Tensor<S>::operator=;
};

/// A 0-d int64 buffer (torch.long; BatchNorm's num_batches_tracked), saved as I64.
struct LongBuffer {
  std::int64_t value = 0;
};

}  // namespace nn
/// One entry of named_parameters() (a Model's or a layer's): a view of a parameter's values (a TensorRef, as
/// state_dict's entries are) with a view of its gradient, `.grad` (PyTorch's param.grad).
/// Both point into the model: writing through them changes it.
struct ParameterRef : TensorRef {
  ParameterRef(TensorRef values, TensorRef gradient) : TensorRef(std::move(values)), grad(std::move(gradient)) {}
  TensorRef grad;
};

/// PyTorch's net.named_parameters(): (name, parameter) pairs with state_dict's names, in its
/// order, that can also be looked up by name as dict(net.named_parameters()) is:
///   net.named_parameters()["0.weight"].grad
class NamedParameters : public detail::named_items<ParameterRef> {
 public:
  /// The parameter named `name` (a view: keep it as a value, `auto p = ...;`); an unknown name
  /// throws std::out_of_range naming it and listing the names there are.
  ParameterRef operator[](const std::string& name) const {
    if (const ParameterRef* p = find(name)) return *p;
    std::string known;
    for (const auto& [n, p] : items_) known += (known.empty() ? "" : ", ") + n;
    throw std::out_of_range("ctnn: named_parameters() has no parameter named '" + name + "' (its names: " + known +
                            ")");
  }
  ParameterRef at(const std::string& name) const { return (*this)[name]; }
  /// The values alone, as state_dict() (what named_parameters() returned before it had .grad).
  operator StateDict() const {
    StateDict sd;
    for (const auto& [name, p] : items_) sd.add(name, p);
    return sd;
  }
  /// As a StateDict prints: OrderedDict([('0.weight', tensor(...)), ...]).
  friend std::ostream& operator<<(std::ostream& os, const NamedParameters& named) {
    return os << static_cast<StateDict>(named);
  }
};

}  // namespace ctnn
