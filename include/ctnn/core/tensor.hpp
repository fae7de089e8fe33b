// Tensors whose per-sample shape is a type.
//
//   Tensor<S>       owning, S::size floats, 64-byte aligned         (a torch tensor of shape S)
//   Batch<S>        owning, N * S::size floats, N chosen at run time (a torch tensor [N, *S])
//   TensorView<S>, ConstTensorView<S>, BatchView<S>, ConstBatchView<S>: the same, non-owning
//   TensorRef       non-owning, shape known only at run time (what state_dict() yields)
//
// All are contiguous and row-major, so a Batch<Shape<C, H, W>> is NCHW.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <memory>
#include <new>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctnn/core/parts.hpp"
#include "ctnn/core/shape.hpp"

namespace ctnn {

/// Thrown when a shape known only at run time is wrong (batch of 0, a buffer of the wrong size...).
struct shape_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

inline constexpr std::size_t tensor_alignment = 64;  // one cache line, one AVX-512 register

namespace detail {

struct aligned_delete {
  bool owns = true;  // false: the floats belong to another tensor (tensor_storage::share)
  void operator()(float* p) const noexcept {
    if (owns) ::operator delete[](p, std::align_val_t{tensor_alignment});
  }
};
using aligned_floats = std::unique_ptr<float[], aligned_delete>;

/// `n` zeroed floats at a 64-byte boundary (padded to whole cache lines).
inline aligned_floats allocate_floats(std::size_t n) {
  if (n == 0) return {};
  const std::size_t padded = (n + 15) / 16 * 16;
  auto* p = static_cast<float*>(::operator new[](padded * sizeof(float), std::align_val_t{tensor_alignment}));
  std::fill_n(p, padded, 0.0f);
  return aligned_floats(p);
}

/// Row-major offset of a multi-index, bounds unchecked (like operator[] of std containers).
template <class S, class... I>
constexpr std::size_t offset_of(I... idx) {
  static_assert(sizeof...(I) == S::rank, "ctnn: number of indices must equal the tensor's rank");
  const std::size_t ix[]{static_cast<std::size_t>(idx)..., 0};
  std::size_t off = 0;
  for (std::size_t d = 0; d < S::rank; ++d) off += ix[d] * S::strides[d];
  return off;
}

template <class S>
struct drop_first;
template <std::size_t D0, std::size_t... D>
struct drop_first<Shape<D0, D...>> {
  using type = Shape<D...>;
};

void print_values(std::ostream& os, const float* data, std::span<const std::size_t> shape);

}  // namespace detail

template <class S, class T>
class BasicTensorView;

/// Element access shared by owning tensors and views of one sample. `Derived` has data().
template <class Derived, class S>
class TensorAccess {
 public:
  using shape_type = S;
  static constexpr S shape{};
  static constexpr std::size_t numel() { return S::size; }
  static constexpr std::size_t dim() { return S::rank; }

  /// t(i, j, k): element at a full multi-index.
  template <class... I>
  decltype(auto) operator()(I... idx) const {
    return self().data()[detail::offset_of<S>(idx...)];
  }
  /// t[i]: an element for rank 1, the sub-tensor t[i] (a view) otherwise, like torch.
  decltype(auto) operator[](std::size_t i) const {
    if constexpr (S::rank == 1) {
      return self().data()[i];
    } else {
      using Sub = typename detail::drop_first<S>::type;
      using Elem = std::remove_reference_t<decltype(*self().data())>;
      return BasicTensorView<Sub, Elem>(self().data() + i * Sub::size);
    }
  }
  auto begin() const { return self().data(); }
  auto end() const { return self().data() + S::size; }
  /// Copy as a plain vector (handy for tests and printing).
  std::vector<float> to_vector() const { return {begin(), end()}; }

  friend std::ostream& operator<<(std::ostream& os, const Derived& t) {
    detail::print_values(os, t.data(), S::dims);
    return os;
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

/// Non-owning view of one sample; T is float or const float.
template <class S, class T>
class BasicTensorView : public TensorAccess<BasicTensorView<S, T>, S> {
 public:
  explicit BasicTensorView(T* data) : data_(data) {}
  /// A view of const floats from a view of floats.
  operator BasicTensorView<S, const float>() const { return BasicTensorView<S, const float>(data_); }
  T* data() const { return data_; }

 private:
  T* data_;
};
template <class S>
using TensorView = BasicTensorView<S, float>;
template <class S>
using ConstTensorView = BasicTensorView<S, const float>;

namespace detail {
struct tensor_storage;
}

/// An owning tensor of shape S, zero-initialized, 64-byte aligned.
template <class S>
class Tensor : public TensorAccess<Tensor<S>, S> {
  static_assert(is_shape_v<S>, "ctnn::Tensor<S>: S must be a ctnn::Shape<...>");

 public:
  Tensor() : data_(detail::allocate_floats(S::size)) {}
  /// Tensor<Shape<2, 2>> t{1, 2, 3, 4}: values in row-major order (exactly S::size of them).
  Tensor(std::initializer_list<float> values) : Tensor() { assign(std::span(values.begin(), values.size())); }
  explicit Tensor(std::span<const float> values) : Tensor() { assign(values); }
  Tensor(const Tensor& other) : Tensor() { std::copy_n(other.data(), S::size, data()); }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(const Tensor& other) {
    if (this != &other) std::copy_n(other.data(), S::size, data());
    return *this;
  }
  Tensor& operator=(Tensor&&) noexcept = default;

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  operator TensorView<S>() { return TensorView<S>(data()); }
  operator ConstTensorView<S>() const { return ConstTensorView<S>(data()); }
  TensorView<S> view() { return TensorView<S>(data()); }
  ConstTensorView<S> view() const { return ConstTensorView<S>(data()); }

  float* begin() { return data(); }
  float* end() { return data() + S::size; }
  using TensorAccess<Tensor<S>, S>::begin;
  using TensorAccess<Tensor<S>, S>::end;
  template <class... I>
  float& operator()(I... idx) {
    return data()[detail::offset_of<S>(idx...)];
  }
  using TensorAccess<Tensor<S>, S>::operator();
  decltype(auto) operator[](std::size_t i) {
    if constexpr (S::rank == 1) {
      return (data()[i]);
    } else {
      return view()[i];
    }
  }
  using TensorAccess<Tensor<S>, S>::operator[];

 private:
  void assign(std::span<const float> values) {
    if (values.size() != S::size)
      throw shape_error("ctnn::Tensor" + S::str() + ": got " + std::to_string(values.size()) + " values, expected " +
                        std::to_string(S::size));
    std::copy(values.begin(), values.end(), data());
  }
  friend struct detail::tensor_storage;
  detail::aligned_floats data_;
};

namespace detail {
/// share(borrower, owner): `borrower` gives up its floats and reads and writes `owner`'s in place,
/// without owning them — how a Model's thread replicas use the network's parameters and buffers
/// (nn/replicas.hpp). `owner`'s floats must outlive `borrower`'s use of them.
struct tensor_storage {
  template <class S>
  static void share(Tensor<S>& borrower, Tensor<S>& owner) {
    borrower.data_ = aligned_floats(owner.data(), aligned_delete{.owns = false});
  }
};
/// Whether T is a Tensor<S> or derives from one (nn::Parameter, nn::Buffer).
template <class S>
std::true_type derives_from_tensor(const Tensor<S>*);
std::false_type derives_from_tensor(const void*);
template <class T>
inline constexpr bool is_tensor = decltype(derives_from_tensor(static_cast<const T*>(nullptr)))::value;
}  // namespace detail

// ---- Batches: N samples of shape S -------------------------------------------------------

template <class Derived, class S>
class BatchAccess {
 public:
  using shape_type = S;
  static constexpr S sample_shape{};
  std::size_t batch_size() const { return self().n_; }
  std::size_t numel() const { return self().n_ * S::size; }
  /// The full shape [N, *S], as torch prints it.
  std::vector<std::size_t> sizes() const {
    std::vector<std::size_t> s{self().n_};
    s.insert(s.end(), S::dims.begin(), S::dims.end());
    return s;
  }
  /// X(n, i, j...): element i, j... of sample n.
  template <class... I>
  decltype(auto) operator()(std::size_t n, I... idx) const {
    return self().data()[n * S::size + detail::offset_of<S>(idx...)];
  }
  /// X[n]: sample n as a view.
  auto operator[](std::size_t n) const {
    using Elem = std::remove_reference_t<decltype(*self().data())>;
    return BasicTensorView<S, Elem>(self().data() + n * S::size);
  }
  auto begin() const { return self().data(); }
  auto end() const { return self().data() + numel(); }
  std::vector<float> to_vector() const { return {begin(), end()}; }

  friend std::ostream& operator<<(std::ostream& os, const Derived& b) {
    const auto s = b.sizes();
    detail::print_values(os, b.data(), s);
    return os;
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

template <class S, class T>
class BasicBatchView : public BatchAccess<BasicBatchView<S, T>, S> {
 public:
  BasicBatchView(T* data, std::size_t n) : data_(data), n_(n) {}
  operator BasicBatchView<S, const float>() const { return {data_, n_}; }
  T* data() const { return data_; }

 private:
  friend class BatchAccess<BasicBatchView, S>;
  T* data_;
  std::size_t n_;
};
template <class S>
using BatchView = BasicBatchView<S, float>;
template <class S>
using ConstBatchView = BasicBatchView<S, const float>;

/// N samples of shape S, contiguous: the tensor torch would call [N, *S].
template <class S>
class Batch : public BatchAccess<Batch<S>, S> {
  static_assert(is_shape_v<S>, "ctnn::Batch<S>: S must be a ctnn::Shape<...>");

 public:
  /// An empty batch (N = 0); resize() or assign before use.
  Batch() = default;
  explicit Batch(std::size_t n) : data_(detail::allocate_floats(n * S::size)), n_(n) {}
  /// N samples from N * S::size row-major values; a wrong count throws shape_error.
  Batch(std::size_t n, std::span<const float> values) : Batch(n) {
    if (values.size() != n * S::size)
      throw shape_error("ctnn::Batch" + S::str() + "(" + std::to_string(n) + "): got " + std::to_string(values.size()) +
                        " values, expected " + std::to_string(n * S::size));
    std::copy(values.begin(), values.end(), data());
  }
  Batch(const Batch& other) : Batch(other.n_) { std::copy_n(other.data(), this->numel(), data()); }
  Batch(Batch&& other) noexcept : data_(std::move(other.data_)), n_(std::exchange(other.n_, 0)) {}
  Batch& operator=(const Batch& other) {
    if (this != &other) {
      if (other.n_ != n_) *this = Batch(other.n_);
      std::copy_n(other.data(), this->numel(), data());
    }
    return *this;
  }
  Batch& operator=(Batch&& other) noexcept {
    data_ = std::move(other.data_);
    n_ = std::exchange(other.n_, 0);
    return *this;
  }

  /// Change N; keeps nothing when N changes.
  void resize(std::size_t n) {
    if (n != n_) *this = Batch(n);
  }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  operator BatchView<S>() { return {data(), n_}; }
  operator ConstBatchView<S>() const { return {data(), n_}; }
  BatchView<S> view() { return {data(), n_}; }
  ConstBatchView<S> view() const { return {data(), n_}; }

  float* begin() { return data(); }
  float* end() { return data() + this->numel(); }
  using BatchAccess<Batch<S>, S>::begin;
  using BatchAccess<Batch<S>, S>::end;
  template <class... I>
  float& operator()(std::size_t n, I... idx) {
    return data()[n * S::size + detail::offset_of<S>(idx...)];
  }
  using BatchAccess<Batch<S>, S>::operator();
  TensorView<S> operator[](std::size_t n) { return TensorView<S>(data() + n * S::size); }
  using BatchAccess<Batch<S>, S>::operator[];

 private:
  friend class BatchAccess<Batch, S>;
  detail::aligned_floats data_;
  std::size_t n_ = 0;
};

// ---- Run-time shaped view ----------------------------------------------------------------

/// The element type of a TensorRef: float32 for parameters and most buffers, int64 for counters
/// such as BatchNorm's num_batches_tracked (PyTorch's torch.long).
enum class Dtype { float32, int64 };

/// A view whose shape is known only at run time: what state_dict() and named_parameters() yield.
/// Almost every entry holds floats (data(), operator[], begin/end); an int64 entry (dtype() ==
/// Dtype::int64, BatchNorm's num_batches_tracked) holds int64_data() instead, and its float
/// accessors throw std::logic_error.
class TensorRef {
 public:
  TensorRef(float* data, std::vector<std::size_t> shape) : data_(data), shape_(std::move(shape)) {}
  TensorRef(std::int64_t* data, std::vector<std::size_t> shape)
      : int64_data_(data), shape_(std::move(shape)), dtype_(Dtype::int64) {}
  template <class S>
  TensorRef(Tensor<S>& t) : TensorRef(t.data(), {S::dims.begin(), S::dims.end()}) {}

  Dtype dtype() const { return dtype_; }
  /// The float values (a float32 entry).
  float* data() const { return floats(); }
  /// The int64 values (an int64 entry), or null for a float32 one.
  std::int64_t* int64_data() const { return int64_data_; }
  const std::vector<std::size_t>& shape() const { return shape_; }
  std::size_t dim() const { return shape_.size(); }
  std::size_t numel() const {
    std::size_t n = 1;
    for (auto d : shape_) n *= d;
    return n;
  }
  float& operator[](std::size_t flat_index) const { return floats()[flat_index]; }
  float* begin() const { return floats(); }
  float* end() const { return floats() + numel(); }
  /// The values as floats (an int64 entry's converted).
  std::vector<float> to_vector() const {
    if (dtype_ == Dtype::int64) {
      std::vector<float> v(numel());
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(int64_data_[i]);
      return v;
    }
    return {begin(), end()};
  }
  /// "[8, 4]"
  std::string shape_str() const {
    std::string s = "[";
    for (std::size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
    return s + "]";
  }
  friend std::ostream& operator<<(std::ostream& os, const TensorRef& t) {
    if (t.dtype_ == Dtype::int64) {  // torch prints a long tensor's values as integers: tensor(3)
      os << "tensor(" << (t.dim() ? "[" : "");
      for (std::size_t i = 0; i < t.numel(); ++i) os << (i ? ", " : "") << t.int64_data_[i];
      return os << (t.dim() ? "])" : ")");
    }
    detail::print_values(os, t.data_, t.shape_);
    return os;
  }

 private:
  float* floats() const {
    if (dtype_ != Dtype::float32)
      throw std::logic_error("ctnn::TensorRef: this " + shape_str() + " tensor holds int64 values; use int64_data()");
    return data_;
  }
  float* data_ = nullptr;
  std::int64_t* int64_data_ = nullptr;
  std::vector<std::size_t> shape_;
  Dtype dtype_ = Dtype::float32;
};

// ---- Printing, like torch ---------------------------------------------------------------

namespace detail {

/// Prints `tensor([[a, b], [c, d]])` with torch's default precision (4 decimals) and layout.
inline void print_values(std::ostream& os, const float* data, std::span<const std::size_t> shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  bool integral = true, sci = false;
  float max_abs = 0, min_abs = INFINITY;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = std::fabs(data[i]);
    if (!std::isfinite(data[i])) continue;
    integral = integral && v == std::floor(v);
    max_abs = std::max(max_abs, v);
    if (v > 0) min_abs = std::min(min_abs, v);
  }
  sci = n > 0 && !integral && (max_abs >= 1e8f || (min_abs < 1e-4f) || max_abs / min_abs > 1000.0f);
  auto fmt = [&](float v) {
    std::ostringstream s;
    if (std::isnan(v)) s << "nan";
    else if (std::isinf(v)) s << (v < 0 ? "-inf" : "inf");
    else if (integral) s << std::fixed << std::setprecision(0) << v << '.';
    else if (sci) s << std::scientific << std::setprecision(4) << v;
    else s << std::fixed << std::setprecision(4) << v;
    return s.str();
  };
  std::size_t width = 0;
  for (std::size_t i = 0; i < n; ++i) width = std::max(width, fmt(data[i]).size());

  const std::size_t rank = shape.size();
  os << "tensor(";
  if (n == 0 && rank > 0) {
    os << "[])";
    return;
  }
  if (rank == 0) {
    os << fmt(data[0]) << ')';
    return;
  }
  // Recursive walk over dimensions; rows of the last dimension are separated by ",\n" + indent.
  auto rec = [&](auto&& self, std::size_t d, std::size_t offset, std::size_t stride) -> void {
    os << '[';
    const std::size_t inner = stride / shape[d];
    for (std::size_t i = 0; i < shape[d]; ++i) {
      if (i) {
        if (d + 1 == rank) {
          os << ", ";
        } else {
          os << ',' << std::string(rank - d - 1, '\n') << std::string(8 + d, ' ');
        }
      }
      if (d + 1 == rank) {
        const std::string s = fmt(data[offset + i]);
        os << std::string(width - s.size(), ' ') << s;
      } else {
        self(self, d + 1, offset + i * inner, inner);
      }
    }
    os << ']';
  };
  rec(rec, 0, 0, n);
  os << ')';
}

}  // namespace detail
}  // namespace ctnn
