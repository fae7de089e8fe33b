// nn::Parameter<S> (a tensor with its gradient) and ctnn::StateDict (name -> tensor, in order).
//
// They sit in core/ because everything above the kernels speaks them: layers (nn/) own
// Parameters, expressions (expr/) read and write them as leaves, and io/ and optim/ walk a
// StateDict. Keeping them here lets expr/ and io/ depend on core/ alone.
//
// The namespaces are the public spellings and stay as they were: ctnn::StateDict and
// ctnn::nn::Parameter (PyTorch's torch.nn.Parameter; its demangled name, printed in the guide,
// is ctnn::nn::Parameter<ctnn::Shape<...>>).
#pragma once

#include <cstddef>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ctnn/core/tensor.hpp"

namespace ctnn {

/// (name, tensor) pairs in registration order, like PyTorch's OrderedDict state_dict.
class StateDict {
 public:
  using value_type = std::pair<std::string, TensorRef>;

  void add(std::string name, TensorRef t) { items_.emplace_back(std::move(name), std::move(t)); }
  std::size_t size() const { return items_.size(); }
  bool contains(const std::string& name) const { return find(name) != items_.end(); }
  /// sd["0.weight"]; an unknown key throws std::out_of_range naming it.
  const TensorRef& operator[](const std::string& name) const {
    auto it = find(name);
    if (it == items_.end()) throw std::out_of_range("ctnn::StateDict: no tensor named '" + name + "'");
    return it->second;
  }
  const TensorRef& at(const std::string& name) const { return (*this)[name]; }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    for (auto& [name, t] : items_) k.push_back(name);
    return k;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

  /// OrderedDict([('weight', tensor(...)), ('bias', tensor(...))]), as PyTorch prints it.
  friend std::ostream& operator<<(std::ostream& os, const StateDict& sd) {
    os << "OrderedDict([";
    for (std::size_t i = 0; i < sd.items_.size(); ++i)
      os << (i ? ", " : "") << "('" << sd.items_[i].first << "', " << sd.items_[i].second << ')';
    return os << "])";
  }

 private:
  std::vector<value_type>::const_iterator find(const std::string& name) const {
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == name) return it;
    return items_.end();
  }
  std::vector<value_type> items_;
};

namespace nn {

/// A learnable tensor: its values and its gradient (zero until a backward pass fills it).
template <class S>
struct Parameter : Tensor<S> {
  using Tensor<S>::Tensor;
  using Tensor<S>::operator=;
  Tensor<S> grad;
};

}  // namespace nn
}  // namespace ctnn
