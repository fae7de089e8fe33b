// Model<Net, Shape<...>>: a network spec bound to a per-sample input shape — the value you hold.
//
// It owns the bound layers (parameters, initialized as PyTorch does, from a seeded generator)
// and a workspace that holds every activation for a batch of N samples, plus (from the first
// backward) a mirror of it for the gradients. The workspace grows when a larger batch arrives
// and is reused otherwise, so once it exists, forward and backward allocate nothing (use
// forward(X) for a view of the output, or forward(X, Y) to write into yours).
//
// Threads: a batch large enough to be worth it is split into one slice per thread
// (ctnn::set_num_threads, or set_num_threads on the model); each thread runs the whole network on
// its slice with its own part of the workspace, and in backward the other threads accumulate
// parameter gradients in copies of the network (which read the model's parameters in place) that
// are then added into the model's (nn/replicas.hpp). A conv whose form prepares weight-sized
// operands (panels of its weights: the regions and dense forms) has its slices prepare a part of
// them each and meet, and holds each slice's weight gradient, which the threads fold into its own
// after backward (nn::SharedWeights); the slices then run on T threads at once.
// Each slice is computed exactly as it would be alone, so the results do not depend on the
// thread count beyond float summation order in the parameter gradients. The exception is a layer
// whose statistics are the whole batch's (BatchNorm in training mode): the slices then meet at a
// barrier and share per-sample sums (core/slices.hpp), still with 1 thread's numbers exactly.
//
// Modes: train() / eval() / training(), as a torch module's (training mode to start with); they
// set every BatchNorm, Dropout and block in the network. Dropout draws its masks from a seed the
// model takes from its generator when it is made.
//
// Training step, as in PyTorch:
//   auto logits = net.forward(X);               // keeps a pointer to X: keep X alive until backward
//   float loss = net.backward(criterion, y);    // dL/dlogits from the loss, then every layer's backward
//   opt.step(net);  net.zero_grad();
#pragma once

#include <algorithm>
#include <cstddef>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctnn/core/diagnostics.hpp"
#include "ctnn/core/random.hpp"
#include "ctnn/core/slices.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/core/threads.hpp"
#include "ctnn/nn/mode.hpp"
#include "ctnn/nn/module.hpp"
#include "ctnn/nn/replicas.hpp"
#include "ctnn/nn/sequential.hpp"

namespace ctnn {

namespace detail {

template <class In>
struct check_model_input {
  static_assert(is_shape_v<In>, "ctnn::Model<Net, In>: In must be a ctnn::Shape<...>");
  static constexpr std::size_t zero = first_zero_dim<In>();
  static constexpr bool ok = rules<rule<zero != In::rank, ERROR_zero_sized_dimension<model_input, dim<zero>, In>>>::ok;
  using shape = std::conditional_t<ok && zero == In::rank, In, poisoned_shape>;
};

/// One row of Model::summary().
struct SummaryRow {
  std::string name;   // "Linear-0.2"
  std::string shape;  // "[N, 8]"
  std::size_t params;
  int depth;
};

/// The rows of `layer` and, indented, its children: a Sequential's by index ("Linear-1.0"), a
/// block's sub-layer members by name, as in state_dict ("Linear-1.hidden"; a block's parameters
/// count in its own row). A whole-batch output (a block returning X.sum()) has no N: "[]".
template <class B>
void summary_rows(const B& layer, const std::string& path, int depth, std::vector<SummaryRow>& rows) {
  constexpr bool batched = nn::has_batched_output<B>;
  std::string shape = batched ? "[N" : "[";
  for (auto d : B::output_shape::dims) shape += (shape.size() > 1 ? ", " : "") + std::to_string(d);
  shape += "]";
  rows.push_back({B::type_name() + (path.empty() ? "" : "-" + path), shape, B::parameter_count, depth});
  auto child_path = [&](const std::string& name) { return path.empty() ? name : path + "." + name; };
  if constexpr (nn::is_sequential<B>) {
    layer.for_each_indexed([&](const auto& child, std::size_t i) {
      summary_rows(child, child_path(std::to_string(i)), depth + 1, rows);
    });
  } else if constexpr (requires { layer.for_each_sublayer([](const std::string&, const auto&) {}); }) {
    layer.for_each_sublayer([&](const std::string& name, const auto& child) {
      summary_rows(child, child_path(name), depth + 1, rows);
    });
  }
}

}  // namespace detail

template <class Net, class In>
class Model {
  using checked_input = typename detail::check_model_input<In>::shape;

 public:
  /// The bound network (for a Sequential spec, an nn::BoundSequential).
  using network_type = nn::bind_t<Net, checked_input>;
  using input_shape_type = In;
  using output_shape_type = typename network_type::output_shape;
  static constexpr In input_shape{};
  static constexpr output_shape_type output_shape{};
  static constexpr std::size_t parameter_count = network_type::parameter_count;
  /// False when the network returns one whole-batch value (a block ending in PyTorch's
  /// `X.sum()`): then every output and output gradient is a batch of one row, whatever N.
  static constexpr bool batched_output = nn::has_batched_output<network_type>;

  /// PyTorch's default initialization, drawn from ctnn::default_generator().
  Model() : Model(default_generator()) {}
  /// PyTorch's default initialization, drawn from `gen` (then, for a network with Dropout, the
  /// seed of its masks).
  explicit Model(Generator& gen) { init(gen); }
  /// PyTorch's default initialization from a fresh generator seeded with `seed`.
  explicit Model(std::uint64_t seed) {
    Generator gen(seed);
    init(gen);
  }
  /// copy.deepcopy(net): the same network with its parameters (and their .grad), buffers, mode
  /// and Dropout seed copied, and the thread setting; the copy starts with its own empty
  /// workspace and no last forward.
  Model(const Model& other)
      : net_(other.net_), training_(other.training_), seed_(other.seed_), step_(other.step_),
        row_doubles_(other.row_doubles_), sharing_(other.sharing_), num_threads_(other.num_threads_),
        input_requires_grad_(other.input_requires_grad_) {}
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  // ---- forward ---------------------------------------------------------------------------

  /// net(X): a new batch holding the output.
  Batch<output_shape_type> operator()(ConstBatchView<In> x) {
    Batch<output_shape_type> y(output_rows(check_batch(x.batch_size())));
    forward(x, y);
    return y;
  }
  Batch<output_shape_type> operator()(const Batch<In>& x) { return (*this)(x.view()); }
  /// net(x) on a single sample.
  Tensor<output_shape_type> operator()(const Tensor<In>& x) {
    Tensor<output_shape_type> y;
    forward(ConstBatchView<In>(x.data(), 1), BatchView<output_shape_type>(y.data(), 1));
    return y;
  }
  /// A tensor whose shape is known only at run time (data read from a file, a TensorRef):
  /// its shape must be [N, *input_shape] with N >= 1, or this throws shape_error.
  Batch<output_shape_type> operator()(const TensorRef& x) {
    const auto& s = x.shape();
    const bool ok = s.size() == In::rank + 1 && std::equal(In::dims.begin(), In::dims.end(), s.begin() + 1);
    if (!ok)
      throw shape_error("ctnn::Model: input of shape " + x.shape_str() + " does not match [N, " + In::str().substr(1));
    return (*this)(ConstBatchView<In>(x.data(), s[0]));
  }

  /// The output as a view into the workspace (valid until the next forward): no allocation
  /// once the workspace has room for x's batch size.
  ConstBatchView<output_shape_type> forward(ConstBatchView<In> x) {
    const std::size_t n = check_batch(x.batch_size());
    // A BatchNorm in training mode refuses a batch of one value per channel before anything changes.
    net_.apply([n](auto& layer) {
      if constexpr (requires { layer.check_batch_size(n); }) layer.check_batch_size(n);
    });
    reserve(n);
    const std::size_t T = plan_slices(n);
    ++step_;
    const float* y = nullptr;
    if (T == 1) {
      detail::BatchSlices whole{.batch = n, .seed = seed_, .step = step_};
      detail::SliceScope scope(whole);
      y = net_.forward(x.data(), n, activations_.get(), scratch_.get());
    } else {
      // Slice t: samples [b, b + m), in its own part of the workspace; its output is copied
      // into one contiguous [N, *output_shape] buffer for the caller (and the loss).
      float* out = outputs_.get();
      run_slices(n, T, [&](std::size_t t, std::size_t b, std::size_t m) {
        const float* ys =
            net_.forward(x.data() + b * In::size, m, activations_.get() + b * activation_floats, scratch_at(t));
        std::copy_n(ys, m * output_shape_type::size, out + b * output_shape_type::size);
      });
      y = out;
    }
    last_input_ = x.data();
    last_output_ = y;
    last_n_ = n;
    last_slices_ = T;
    return {y, output_rows(n)};
  }

  // ---- backward --------------------------------------------------------------------------

  /// Where a loss writes dL/d(output) for the last forward's batch (a view into the workspace).
  BatchView<output_shape_type> output_grad() {
    require_forward("output_grad");
    ensure_grads();
    return {output_grad_ptr(), output_rows(last_n_)};
  }
  /// Backpropagates output_grad() through every layer of the last forward, adding into each
  /// parameter's .grad (gradients accumulate until zero_grad(), as in PyTorch). The last
  /// forward's input must still be alive.
  void backward() {
    require_forward("backward");
    ensure_grads();
    float* dx = input_requires_grad_ ? input_grads_.get() : nullptr;
    if (last_slices_ == 1) {
      detail::BatchSlices whole{.batch = last_n_, .seed = seed_, .step = step_};
      detail::SliceScope scope(whole);
      net_.backward(last_input_, dx, last_n_, activations_.get(), grads_.get(), scratch_.get());
      return;
    }
    // The slices of the last forward, in parallel: slice 0 on the model's own network, slice t
    // on replica t-1 (which reads the model's parameters and buffers in place and takes its
    // mode; its .grad starts at zero), whose gradients are then added into the model's, each
    // thread adding its part of every parameter; a layer that holds its slices' weight gradients
    // (nn::SharedWeights) has each thread fold its part of them into its own.
    const std::size_t n = last_n_, T = last_slices_;
    if constexpr (splittable) replicas_.prepare(net_, T, sharing_);
    run_slices(n, T, [&](std::size_t t, std::size_t b, std::size_t m) {
      auto& net = t == 0 ? net_ : replicas_.refresh(t - 1, training_);
      const float* act = activations_.get() + b * activation_floats;
      float* gact = grads_.get() + b * activation_floats;
      std::copy_n(output_grads_.get() + b * output_shape_type::size, m * output_shape_type::size,
                  gact + m * static_cast<std::size_t>(network_type::output_offset));
      net.backward(last_input_ + b * In::size, dx ? dx + b * In::size : nullptr, m, act, gact, scratch_at(t));
    });
    detail::parallel_for(T, [&](std::size_t t) {
      replicas_.take_grads(T, t);
      for (const auto& s : sharing_) s.fold(s.in(net_), t, T);
    });
    replicas_.taken();
  }
  /// loss.backward(output, target, output_grad()) then backward(): the loss value is returned.
  /// `loss` is an nn::CrossEntropyLoss, nn::MSELoss, or anything with that backward signature.
  template <class Loss, class Target>
  float backward(const Loss& loss, const Target& target) {
    require_forward("backward");
    const float value =
        loss.backward(ConstBatchView<output_shape_type>(last_output_, output_rows(last_n_)), target, output_grad());
    backward();
    return value;
  }
  /// Also compute dL/d(input) in backward() (off by default, as an input has requires_grad=False).
  void set_input_requires_grad(bool on) { input_requires_grad_ = on; }
  /// dL/d(input) of the last backward (requires set_input_requires_grad(true)).
  ConstBatchView<In> input_grad() const {
    if (!input_requires_grad_ || !input_grads_)
      throw std::logic_error("ctnn::Model::input_grad: call set_input_requires_grad(true) before backward()");
    return {input_grads_.get(), last_n_};
  }
  /// Writes the output into y (same batch size as x).
  void forward(ConstBatchView<In> x, BatchView<output_shape_type> y) {
    if (y.batch_size() != output_rows(x.batch_size()))
      throw shape_error("ctnn::Model::forward: output batch of " + std::to_string(y.batch_size()) +
                        " rows for an input batch of " + std::to_string(x.batch_size()) + " samples (expected " +
                        std::to_string(output_rows(x.batch_size())) + ")");
    const auto out = forward(x);
    std::copy_n(out.data(), out.numel(), y.data());
  }

  /// Make room in the workspace for batches of up to n samples (and, when such a batch is split
  /// across threads, start the threads and size their slices).
  void reserve(std::size_t n) {
    if (n > capacity_ || !scratch_) {
      activations_ = detail::allocate_floats(std::max<std::size_t>(1, n * activation_floats));
      if (!scratch_) {
        scratch_ = detail::allocate_floats(scratch_stride);
        scratch_slices_ = 1;
      }
      grads_.reset();  // re-made at the next backward, at the new size
      input_grads_.reset();
      outputs_.reset();
      output_grads_.reset();
      capacity_ = n;
      last_input_ = last_output_ = nullptr;
    }
    if (const std::size_t T = plan_slices(n); T > 1) prepare_slices(T);
  }

  // ---- modes -----------------------------------------------------------------------------

  /// module.train(mode=True): training mode (BatchNorm normalizes with the batch's statistics
  /// and updates the running ones; Dropout drops), or evaluation mode with train(false).
  Model& train(bool on = true) {
    nn::set_training(net_, on);
    training_ = on;
    return *this;
  }
  /// module.eval(): evaluation mode (BatchNorm uses its running statistics; Dropout is the identity).
  Model& eval() { return train(false); }
  /// module.training
  bool training() const { return training_; }

  // ---- threads ---------------------------------------------------------------------------

  /// Threads this model splits a batch over; 0 (the default) follows ctnn::get_num_threads().
  void set_num_threads(int n) {
    if (n < 0) throw std::invalid_argument("ctnn::Model::set_num_threads: expected n >= 0, got " + std::to_string(n));
    num_threads_ = n;
  }
  /// The number of threads a large enough batch is split over now.
  int num_threads() const { return num_threads_ > 0 ? num_threads_ : get_num_threads(); }
  /// How many threads a batch of n samples is split over (1: not split). A network whose samples
  /// are coupled (nn::is_batch_coupled) or whose output is a view of its input is never split.
  std::size_t threads_for_batch(std::size_t n) const { return plan_slices(n); }
  /// A batch is split only when every slice has at least this many floats of activations to
  /// write (64 KB): below that, waking a thread costs about as much as it saves.
  static constexpr std::size_t min_activation_floats_per_thread = 16384;

  // ---- parameters and layers -------------------------------------------------------------

  /// net[I] as net.get<I>() (for a Sequential net); nested: net.get<1>().get<0>().
  template <std::size_t I>
  auto& get() {
    return net_.template get<I>();
  }
  template <std::size_t I>
  const auto& get() const {
    return net_.template get<I>();
  }
  /// net[2_c]
  template <class C>
    requires requires { C::value; }
  auto& operator[](C c) {
    return net_[c];
  }
  template <class C>
    requires requires { C::value; }
  const auto& operator[](C c) const {
    return net_[c];
  }
  /// The whole bound network.
  network_type& network() { return net_; }
  const network_type& network() const { return net_; }

  /// ("0.weight", tensor), ... in PyTorch's names and order: parameters and buffers (BatchNorm's
  /// running_mean, running_var, num_batches_tracked); the tensors are views into the model.
  StateDict state_dict() const { return net_.state_dict(); }
  /// PyTorch's named_buffers(): the state_dict entries that are not parameters.
  StateDict named_buffers() const { return net_.named_buffers(); }
  /// PyTorch's named_parameters(): state_dict's names and order, each with its values and its
  /// gradient (`net.named_parameters()["0.weight"].grad`, a view of net[0_c].weight.grad).
  NamedParameters named_parameters() const { return net_.named_parameters(); }
  /// f(name, parameter) for every parameter in state_dict order; parameter is an nn::Parameter<S>&
  /// (values, and .grad). Optimizers walk the model with it; buffers are not parameters.
  template <class F>
  void for_each_parameter(F&& f) {
    net_.for_each_parameter(std::string(), f);
  }
  /// The same walk without the names (f gets an empty name): what zero_grad and the optimizers
  /// use, so that a step builds no strings (nn::Unnamed).
  template <class F>
  void for_each_parameter(nn::Unnamed, F&& f) {
    net_.for_each_parameter(nn::unnamed, f);
  }
  /// Set every parameter's gradient to zero.
  void zero_grad() {
    const std::size_t T = elementwise_threads();
    if (T == 1) return net_.zero_grad();
    detail::parallel_for(T, [&](std::size_t t) {
      net_.for_each_parameter(nn::unnamed, [&](const std::string&, auto& p) {
        const auto [b, m] = detail::elementwise_part(p.grad.numel(), T, t);
        kernels::detail::zero_floats(p.grad.data() + b, m);
      });
    });
  }
  /// Threads the model's passes over all its parameters (zero_grad, an optimizer's step) run on:
  /// its thread count when it has at least detail::parallel_parameter_floats of them, else 1.
  std::size_t elementwise_threads() const {
    if (parameter_count < detail::parallel_parameter_floats || detail::ThreadPool::in_task()) return 1;
    return static_cast<std::size_t>(num_threads());
  }
  /// torch's Module.apply: f(layer) for every layer, children before their parent.
  template <class F>
  Model& apply(F&& f) {
    net_.apply(f);
    return *this;
  }
  /// Re-draw every parameter with PyTorch's default initialization.
  void reset_parameters(Generator& gen = default_generator()) { net_.reset_parameters(gen); }

  /// A torchinfo-style table: layer, output shape, parameter count.
  std::string summary() const {
    std::vector<detail::SummaryRow> rows;
    detail::summary_rows(net_, "", 0, rows);
    std::size_t w = 20;
    for (auto& r : rows) w = std::max(w, r.name.size() + 2 * r.depth + 2);
    std::ostringstream os;
    const std::string rule(w + 36, '=');
    os << rule << '\n'
       << std::left << std::setw(static_cast<int>(w)) << "Layer (type)" << std::setw(24) << "Output Shape"
       << "Param #\n"
       << rule << '\n';
    const std::size_t first = nn::is_sequential<network_type> ? 1 : 0;  // a Sequential's own row is the total
    for (std::size_t i = first; i < rows.size(); ++i) {
      const auto& r = rows[i];
      os << std::left << std::setw(static_cast<int>(w)) << (std::string(2 * (r.depth - int(first)), ' ') + r.name)
         << std::setw(24) << r.shape << r.params << '\n';
    }
    os << rule << '\n'
       << "Input shape: [N, " << In::str().substr(1) << '\n'
       << "Total params: " << parameter_count << '\n'
       << rule << '\n';
    return os.str();
  }
  /// PyTorch's repr of the module tree.
  friend std::ostream& operator<<(std::ostream& os, const Model& m) {
    m.net_.print(os, 0);
    return os;
  }

 private:
  void require_forward(const char* what) const {
    if (!last_input_) throw std::logic_error(std::string("ctnn::Model::") + what + ": call forward(X) first");
  }
  void ensure_grads() {
    if (!grads_) grads_ = detail::allocate_floats(std::max<std::size_t>(1, capacity_ * activation_floats));
    if (!input_grads_) input_grads_ = detail::allocate_floats(capacity_ * In::size);
    if (last_slices_ > 1 && !output_grads_)
      output_grads_ = detail::allocate_floats(capacity_ * output_shape_type::size);
  }
  /// dL/d(output) lives where the output lives, in the gradient mirror of the workspace (or, after
  /// a split forward, in a contiguous buffer that backward() hands out to the slices).
  float* output_grad_ptr() {
    if constexpr (network_type::output_offset < 0) return input_grads_.get();  // the net is a view of its input
    else if (last_slices_ > 1) return output_grads_.get();
    else return grads_.get() + last_n_ * static_cast<std::size_t>(network_type::output_offset);
  }

  void init(Generator& gen) {
    net_.reset_parameters(gen);
    bool dropout = false;
    net_.apply([&](auto& layer) {
      using L = std::remove_cvref_t<decltype(layer)>;
      if constexpr (requires { L::batch_row_doubles; }) row_doubles_ = std::max(row_doubles_, L::batch_row_doubles);
      dropout = dropout || nn::is_dropout<L>;
      if constexpr (requires { layer.reserve_slices(1); }) sharing_.push_back(detail::SharingLayer::of(net_, layer));
    });
    if (dropout) seed_ = gen.randint(~std::uint64_t{0});
  }

  /// f(t, first sample, samples) for the T slices of a batch of n, each on its own thread with its
  /// slice context (core/slices.hpp). With layers whose slices meet at a barrier, on exactly T
  /// threads; a slice that throws releases the others, and its exception is the one rethrown.
  template <class F>
  void run_slices(std::size_t n, std::size_t T, F&& f) {
    const bool meets = row_doubles_ > 0 || !sharing_.empty();
    barrier_.reset(T);
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    double* rows = reinterpret_cast<double*>(rows_.get());
    detail::parallel_for(
        T,
        [&](std::size_t t) {
          const auto [b, m] = slice(n, T, t);
          detail::BatchSlices mine{.slice = t,
                                   .slices = T,
                                   .first = b,
                                   .batch = n,
                                   .barrier = &barrier_,
                                   .rows = {rows, rows + n * row_doubles_},
                                   .row_doubles = row_doubles_,
                                   .seed = seed_,
                                   .step = step_};
          detail::SliceScope scope(mine);
          try {
            f(t, b, m);
          } catch (const detail::slice_aborted&) {  // another slice failed: its exception is rethrown
          } catch (...) {
            if (!failed.exchange(true)) failure = std::current_exception();
            barrier_.abort();
          }
        },
        meets);
    if (failure) std::rethrow_exception(failure);
  }

  // ---- batch slices for threads ----
  static constexpr std::size_t activation_floats = network_type::activation_floats;
  /// Scratch floats per slice, a multiple of 16 so that every slice stays 64-byte aligned.
  static constexpr std::size_t scratch_stride = (std::max<std::size_t>(1, network_type::scratch_floats) + 15) / 16 * 16;
  /// A network can be split when its output is not a view of its input, its samples are
  /// independent, and it can be copied (for the per-thread gradients).
  static constexpr bool splittable = network_type::output_offset >= 0 && batched_output &&
                                     !nn::is_batch_coupled<network_type> && std::is_copy_assignable_v<network_type>;

  std::size_t plan_slices(std::size_t n) const {
    if constexpr (!splittable) {
      return 1;
    } else {
      if ((row_doubles_ > 0 || !sharing_.empty()) && detail::ThreadPool::in_task())
        return 1;  // slices that meet need their own threads
      const std::size_t by_work = n * activation_floats / min_activation_floats_per_thread;
      return std::max<std::size_t>(1, std::min({static_cast<std::size_t>(num_threads()), n, by_work}));
    }
  }
  /// Slice t of T over n samples: {first sample, sample count}.
  static std::pair<std::size_t, std::size_t> slice(std::size_t n, std::size_t T, std::size_t t) {
    return detail::batch_part(n, T, t);
  }
  float* scratch_at(std::size_t t) { return scratch_.get() + t * scratch_stride; }
  void prepare_slices(std::size_t T) {
    if (scratch_slices_ < T) {
      scratch_ = detail::allocate_floats(T * scratch_stride);
      scratch_slices_ = T;
    }
    if (!outputs_) outputs_ = detail::allocate_floats(capacity_ * output_shape_type::size);
    if (row_doubles_ > 0 && rows_capacity_ < capacity_) {  // two [capacity, row_doubles] double buffers
      rows_ = detail::allocate_floats(4 * capacity_ * row_doubles_);
      rows_capacity_ = capacity_;
    }
    for (const auto& s : sharing_) s.reserve(s.in(net_), T);
    detail::ThreadPool::instance().reserve(T - 1);
  }
  /// Rows of the output for a batch of n: n, or 1 for a whole-batch value.
  static constexpr std::size_t output_rows(std::size_t n) { return batched_output ? n : 1; }
  static std::size_t check_batch(std::size_t n) {
    if (n == 0)
      throw shape_error("ctnn::Model: a batch of 0 samples (expected N >= 1) for input [N, " + In::str().substr(1));
    return n;
  }

  network_type net_;
  detail::aligned_floats activations_, scratch_, grads_, input_grads_;
  std::size_t capacity_ = 0;
  // Modes and Dropout's stream: the mode, the seed of the masks, the number of forwards so far.
  bool training_ = true;
  std::uint64_t seed_ = 0, step_ = 0;
  // Slices that meet (BatchNorm in training mode): their barrier and shared per-sample rows.
  std::size_t row_doubles_ = 0, rows_capacity_ = 0;
  detail::aligned_floats rows_;
  detail::SliceBarrier barrier_;
  // Layers whose slices share prepared weights and meet (nn/shared_weights.hpp).
  std::vector<detail::SharingLayer> sharing_;
  // Threads: the setting, the scratch slices allocated, the contiguous output (and its
  // gradient) of a split forward, and the per-thread copies of the network for backward.
  int num_threads_ = 0;
  std::size_t scratch_slices_ = 0;
  detail::aligned_floats outputs_, output_grads_;
  detail::Replicas<network_type> replicas_;
  // The last forward, for backward.
  const float* last_input_ = nullptr;
  const float* last_output_ = nullptr;
  std::size_t last_n_ = 0;
  std::size_t last_slices_ = 1;
  bool input_requires_grad_ = false;
};

}  // namespace ctnn
