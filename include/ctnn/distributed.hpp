// ctnn::dist — data-parallel training over MPI: torch.distributed's process group
// (init_process_group / get_rank / get_world_size / destroy_process_group), the parameter
// broadcast and gradient averaging of torch.nn.parallel.DistributedDataParallel, and
// torch.nn.SyncBatchNorm's statistics over every rank's part of the batch.
//
//   ctnn::dist::Context mpi(argc, argv);            // MPI_Init_thread ... MPI_Finalize (RAII)
//   const int r = ctnn::dist::rank(), w = ctnn::dist::world_size();
//   ctnn::dist::broadcast_parameters(net, 0);       // every rank starts from rank 0's state_dict
//   io::DataLoader loader(train, B / w, true, seed, false, io::DistributedSampler{.num_replicas = w, .rank = r});
//   for (auto [X, y] : loader) {                     // X: [B / w, *In], this rank's part of the batch
//     net.forward(X); net.zero_grad(); net.backward(criterion, y);
//     ctnn::dist::allreduce_gradients(net);          // every .grad averaged over the ranks
//     opt.step(net);
//   }
//
// Not included by ctnn.hpp: only a program that includes this header needs MPI (link it with
// meson's dependency('mpi', language: 'cpp'), or mpicxx). While MPI runs with more than one
// rank, a training-mode BatchNorm reduces its statistics over every rank (SyncBatchNorm), so a
// forward or backward of a network with BatchNorm in training mode is a collective: every rank
// must make it (set_sync_batchnorm(false) opts out). A rank whose exception is not caught ends
// the whole job (the terminate handler prints "ctnn rank R: <what>" and calls MPI_Abort), so the
// other ranks never wait forever. docs/distributed.md is the guide.
#pragma once

#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // Open MPI's deprecated C++ bindings: not used, and noisy under -Wpedantic
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctnn/core/parameter.hpp"
#include "ctnn/core/slices.hpp"
#include "ctnn/core/tensor.hpp"

namespace ctnn::dist {

namespace detail {

/// The process group's state: one per process.
struct State {
  bool initialized = false;  // between init and finalize
  bool finalized = false;    // MPI cannot be initialized twice in one process
  bool owns_mpi = false;     // MPI_Init was ours (MPI_Finalize is then ours too)
  bool sync_batchnorm = true;
  int rank = 0, world_size = 1;
  std::vector<float> flat;                // gradients, packed: sized at the first call, reused after
  std::vector<std::int64_t> flat_int64;   // int64 buffers (broadcast_parameters)
  std::vector<std::uint64_t> schemas;     // [world_size, 2]: every rank's schema hash and tensor count
  std::terminate_handler previous_terminate = nullptr;
};
inline State& state() {
  static State s;
  return s;
}

inline void require_init(const char* what) {
  if (!state().initialized)
    throw std::logic_error(std::string("ctnn::dist::") + what +
                           ": MPI is not initialized; call ctnn::dist::init(argc, argv) (or hold a "
                           "ctnn::dist::Context) first");
}

inline void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("ctnn::dist::") + what + ": MPI error: " + text);
}

/// batch_group's allreduce (SyncBatchNorm): sums k doubles over the ranks, in place.
inline void allreduce_doubles(double* values, std::size_t k) {
  check(MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(k), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "SyncBatchNorm");
}
inline void update_batch_group() {
  const State& s = state();
  ctnn::detail::batch_group.allreduce_sum =
      s.initialized && s.world_size > 1 && s.sync_batchnorm ? &allreduce_doubles : nullptr;
}

/// Prints "ctnn rank R: <message>" to stderr and ends every rank of the job.
[[noreturn]] inline void abort_job(const std::string& message, int code) {
  std::fprintf(stderr, "ctnn rank %d: %s\n", state().rank, message.c_str());
  std::fflush(stderr);
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (up && !down) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

/// std::terminate while MPI runs (an exception nobody caught): end the whole job with its message.
[[noreturn]] inline void on_terminate() {
  std::string what = "std::terminate called without an active exception";
  if (const std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
      what = "an exception that is not a std::exception";
    }
  }
  abort_job(what, 1);
}

/// FNV-1a over a state_dict's names, dtypes and shapes: equal on two ranks when their models
/// have the same tensors in the same order.
inline std::uint64_t schema_hash(const StateDict& sd) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](const void* p, std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; ++i) {
      h ^= static_cast<const unsigned char*>(p)[i];
      h *= 0x100000001b3ULL;
    }
  };
  for (const auto& [name, t] : sd) {
    mix(name.data(), name.size() + 1);
    const int dtype = static_cast<int>(t.dtype());
    mix(&dtype, sizeof dtype);
    const std::size_t rank = t.dim();
    mix(&rank, sizeof rank);
    for (std::size_t d : t.shape()) mix(&d, sizeof d);
  }
  return h;
}

/// The schema of a model type (its state_dict's names and shapes are the type's): computed once.
template <class M>
std::uint64_t schema_of(const M& net) {
  static const std::uint64_t h = schema_hash(net.state_dict());
  return h;
}
/// The floats for_each_parameter walks (a parameter shared by two layers counts twice).
template <class M>
std::size_t gradient_floats(M& net) {
  static const std::size_t n = [&] {
    std::size_t total = 0;
    net.for_each_parameter(nn::unnamed, [&](const std::string&, auto& p) { total += p.grad.numel(); });
    return total;
  }();
  return n;
}

/// Every rank's (schema, parameter count) gathered; throws the same std::runtime_error on every
/// rank when they differ, before anything is sent that could corrupt a model.
inline void check_same_model(std::uint64_t schema, std::uint64_t count, const char* what) {
  State& s = state();
  const std::uint64_t mine[2] = {schema, count};
  check(MPI_Allgather(mine, 2, MPI_UINT64_T, s.schemas.data(), 2, MPI_UINT64_T, MPI_COMM_WORLD), what);
  std::string diff;
  for (int r = 1; r < s.world_size; ++r)
    if (s.schemas[2 * r] != s.schemas[0] || s.schemas[2 * r + 1] != s.schemas[1])
      diff += (diff.empty() ? "" : ", ") + std::string("rank ") + std::to_string(r) + " has " +
              std::to_string(s.schemas[2 * r + 1]) + " values";
  if (diff.empty()) return;
  throw std::runtime_error(
      std::string("ctnn::dist::") + what +
      ": the ranks' models differ (names, shapes or count of their state_dict tensors): rank 0 has " +
      std::to_string(s.schemas[1]) + " values, " + diff + "; every rank must build the same network");
}

/// MPI counts are ints: a long buffer goes in pieces of at most 2^30 elements.
template <class F>
void in_pieces(std::size_t n, F&& f) {
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t first = 0; first < n; first += piece) f(first, static_cast<int>(std::min(piece, n - first)));
}

}  // namespace detail

// ---- the process group -----------------------------------------------------------------

/// torch.distributed.is_initialized()
inline bool is_initialized() { return detail::state().initialized; }

/// torch.distributed.init_process_group("mpi"): MPI_Init_thread (MPI_THREAD_FUNNELED: only the
/// thread that calls forward/backward talks to MPI), unless the program initialized MPI itself
/// (then ctnn uses it and leaves MPI_Finalize to the program). Installs a terminate handler that
/// ends the job on an uncaught exception, and turns SyncBatchNorm on when world_size() > 1.
/// Throws std::logic_error when called twice, or after finalize().
inline void init(int* argc, char*** argv) {
  detail::State& s = detail::state();
  if (s.initialized)
    throw std::logic_error("ctnn::dist::init: already initialized (call ctnn::dist::finalize() first)");
  if (s.finalized) throw std::logic_error("ctnn::dist::init: MPI cannot be initialized again after finalize()");
  int up = 0;
  MPI_Initialized(&up);
  if (!up) {
    int provided = 0;
    detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
    s.owns_mpi = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &s.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &s.world_size);
  s.schemas.assign(2 * static_cast<std::size_t>(s.world_size), 0);
  s.initialized = true;
  s.previous_terminate = std::set_terminate(&detail::on_terminate);
  detail::update_batch_group();
}
inline void init(int& argc, char**& argv) { init(&argc, &argv); }
/// init() without the command line (MPI_Init_thread(nullptr, nullptr, ...)).
inline void init() { init(nullptr, nullptr); }

/// torch.distributed.destroy_process_group(): MPI_Finalize (when init started MPI); SyncBatchNorm
/// off, the terminate handler restored. Every rank must call it. Throws std::logic_error before init.
inline void finalize() {
  detail::require_init("finalize");
  detail::State& s = detail::state();
  s.initialized = false;
  s.finalized = s.owns_mpi;
  detail::update_batch_group();
  std::set_terminate(s.previous_terminate);
  s.flat = {};
  s.flat_int64 = {};
  if (s.owns_mpi) MPI_Finalize();
  s.owns_mpi = false;
}

/// torch.distributed.get_rank(): this process's rank, 0..world_size()-1.
inline int rank() {
  detail::require_init("rank");
  return detail::state().rank;
}
/// torch.distributed.get_world_size(): the number of processes (ranks).
inline int world_size() {
  detail::require_init("world_size");
  return detail::state().world_size;
}

/// Prints "ctnn rank R: <message>" to stderr and ends the whole job (MPI_Abort) with `code`:
/// what a rank that fails must do instead of returning, or the other ranks wait forever.
[[noreturn]] inline void abort(const std::string& message, int code = 1) { detail::abort_job(message, code); }

/// torch.distributed.barrier()
inline void barrier() {
  detail::require_init("barrier");
  detail::check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

/// torch.distributed.all_reduce(t) (op=SUM), in place, on every rank.
inline void all_reduce(std::span<double> values) {
  detail::require_init("all_reduce");
  detail::in_pieces(values.size(), [&](std::size_t first, int count) {
    detail::check(MPI_Allreduce(MPI_IN_PLACE, values.data() + first, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                  "all_reduce");
  });
}
inline void all_reduce(std::span<float> values) {
  detail::require_init("all_reduce");
  detail::in_pieces(values.size(), [&](std::size_t first, int count) {
    detail::check(MPI_Allreduce(MPI_IN_PLACE, values.data() + first, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                  "all_reduce");
  });
}

/// SyncBatchNorm on (the default once init sees more than one rank) or off: off, each rank's
/// BatchNorm uses its own part of the batch, as a plain torch.nn.BatchNorm under DDP. Returns the
/// previous setting. Throws std::logic_error before init.
inline bool set_sync_batchnorm(bool on) {
  detail::require_init("set_sync_batchnorm");
  const bool previous = detail::state().sync_batchnorm;
  detail::state().sync_batchnorm = on;
  detail::update_batch_group();
  return previous;
}
/// Whether a training-mode BatchNorm reduces its statistics over the ranks now.
inline bool sync_batchnorm() { return ctnn::detail::batch_group.allreduce_sum != nullptr; }

/// RAII: init in the constructor, finalize in the destructor (torch's init_process_group /
/// destroy_process_group). When the scope is left by an exception (one that something above
/// will catch), the destructor ends the whole job instead (MPI_Abort after "ctnn rank R: ..."),
/// as MPI_Finalize would wait for ranks that may be waiting for this one.
class Context {
 public:
  Context(int& argc, char**& argv) { init(argc, argv); }
  Context() { init(); }
  ~Context() {
    if (!is_initialized()) return;
    if (std::uncaught_exceptions() > 0)
      detail::abort_job("an exception left the scope of ctnn::dist::Context; ending the job", 1);
    finalize();
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  int rank() const { return dist::rank(); }
  int world_size() const { return dist::world_size(); }
};

// ---- models ----------------------------------------------------------------------------

/// DDP's broadcast at construction (and torch.distributed.broadcast of each state_dict tensor):
/// every rank's parameters and buffers (BatchNorm's running statistics and num_batches_tracked)
/// become rank `root`'s. Two messages (the floats, the int64s). Throws std::invalid_argument for
/// a root outside [0, world_size()), std::runtime_error on every rank when the models differ.
template <class M>
void broadcast_parameters(M& net, int root = 0) {
  detail::require_init("broadcast_parameters");
  detail::State& s = detail::state();
  if (root < 0 || root >= s.world_size)
    throw std::invalid_argument("ctnn::dist::broadcast_parameters: root " + std::to_string(root) +
                                " is not a rank (world_size " + std::to_string(s.world_size) + ")");
  const StateDict sd = net.state_dict();
  std::size_t floats = 0, longs = 0;
  for (const auto& [name, t] : sd) (t.dtype() == Dtype::int64 ? longs : floats) += t.numel();
  detail::check_same_model(detail::schema_of(net), floats + longs, "broadcast_parameters");
  if (s.world_size == 1) return;
  s.flat.resize(std::max(s.flat.size(), floats));
  s.flat_int64.resize(std::max(s.flat_int64.size(), longs));
  auto walk = [&](bool pack) {  // pack: model -> flat buffers; unpack: flat buffers -> model
    std::size_t f = 0, l = 0;
    for (const auto& [name, t] : sd) {
      const std::size_t n = t.numel();
      if (t.dtype() == Dtype::int64) {
        std::int64_t *model = t.int64_data(), *flat = s.flat_int64.data() + l;
        std::copy_n(pack ? model : flat, n, pack ? flat : model);
        l += n;
      } else {
        float *model = t.data(), *flat = s.flat.data() + f;
        std::copy_n(pack ? model : flat, n, pack ? flat : model);
        f += n;
      }
    }
  };
  if (s.rank == root) walk(true);
  detail::in_pieces(floats, [&](std::size_t first, int count) {
    detail::check(MPI_Bcast(s.flat.data() + first, count, MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast_parameters");
  });
  detail::in_pieces(longs, [&](std::size_t first, int count) {
    detail::check(MPI_Bcast(s.flat_int64.data() + first, count, MPI_INT64_T, root, MPI_COMM_WORLD),
                  "broadcast_parameters");
  });
  if (s.rank != root) walk(false);
}

/// DDP's gradient reduction after backward: every parameter's .grad becomes the mean of the
/// ranks' .grad. With equal local batches and a mean-reduced loss (CrossEntropyLoss's default),
/// that is the gradient of the global batch's mean loss. The gradients are packed into one flat
/// buffer (allocated at the first call, reused after) and sent in one MPI_Allreduce (pieces of
/// 2^30 floats beyond that), after a 16-byte MPI_Allgather that checks every rank holds the same
/// model. Throws std::runtime_error on every rank when the models differ (no gradient changed).
template <class M>
void allreduce_gradients(M& net) {
  detail::require_init("allreduce_gradients");
  detail::State& s = detail::state();
  const std::size_t n = detail::gradient_floats(net);
  detail::check_same_model(detail::schema_of(net), n, "allreduce_gradients");
  if (s.world_size == 1) return;
  if (s.flat.size() < n) s.flat.resize(n);
  float* flat = s.flat.data();
  std::size_t at = 0;
  net.for_each_parameter(nn::unnamed, [&](const std::string&, auto& p) {
    std::copy_n(p.grad.data(), p.grad.numel(), flat + at);
    at += p.grad.numel();
  });
  detail::in_pieces(n, [&](std::size_t first, int count) {
    detail::check(MPI_Allreduce(MPI_IN_PLACE, flat + first, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                  "allreduce_gradients");
  });
  const float w = static_cast<float>(s.world_size);
  at = 0;
  net.for_each_parameter(nn::unnamed, [&](const std::string&, auto& p) {
    float* g = p.grad.data();
    for (std::size_t i = 0; i < p.grad.numel(); ++i) g[i] = flat[at + i] / w;
    at += p.grad.numel();
  });
}

}  // namespace ctnn::dist
