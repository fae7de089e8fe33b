// The MPI test program (ctnn::dist): one binary, one mode per run, started by run_mpi.py under
// `mpirun -np 2` — torch.distributed's DDP / SyncBatchNorm / DistributedSampler checked against
// one process on the whole batch.
//
//   test_mpi equal       5 SGD steps of LeNet and of a BatchNorm network on w ranks (the batch
//                        sharded by DataLoader + DistributedSampler) equal 1 process on the whole
//                        batch, computed on every rank by a second Model (parameters and buffers,
//                        rel 1e-5), and are bit-identical on every rank; allreduce_gradients
//                        allocates nothing after the first step
//   test_mpi broadcast   broadcast_parameters makes differently seeded ranks (different running
//                        statistics and num_batches_tracked too) identical to the root
//   test_mpi mismatch    allreduce_gradients / broadcast_parameters on ranks whose models differ
//                        throw std::runtime_error on every rank, and change nothing
//   test_mpi throw       rank 1 throws in the middle of a step (uncaught): the job must end
//   test_mpi throw-scope rank 1's exception leaves the Context's scope (caught above it)
// Every mode first checks that ctnn::dist refuses to run before init (std::logic_error).
// Each rank prints "rank R: <mode> OK" when its checks pass and returns 1 otherwise.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctnn/ctnn.hpp>
#include <ctnn/distributed.hpp>
#include <ctnn/models/d2l.hpp>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "../counting_new.hpp"  // counts operator new calls: a step must allocate nothing after the first

namespace nn = ctnn::nn;
namespace dist = ctnn::dist;
using ctnn::Model, ctnn::Shape;
using Image = ctnn::models::FashionMNISTImage;  // [1, 28, 28]

namespace {

// Conv2d, BatchNorm2d, ReLU, Flatten, LazyLinear, BatchNorm1d, LazyLinear: [N, 1, 28, 28] -> [N, 10]
using BNNet = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .padding = 1}>,
                             nn::BatchNorm2d<{.num_features = 4}>, nn::ReLU, nn::Flatten, nn::LazyLinear<16>,
                             nn::LazyBatchNorm1d<>, nn::LazyLinear<10>>;

int failures = 0;

void fail(const std::string& what) {
  std::printf("rank %d: FAILED: %s\n", dist::is_initialized() ? dist::rank() : -1, what.c_str());
  std::fflush(stdout);
  ++failures;
}

/// A synthetic Fashion-MNIST-shaped dataset: n images with values in [0, 1), labels 0..9.
ctnn::io::Dataset<Image> synthetic(std::size_t n, std::uint64_t seed) {
  ctnn::Generator gen(seed);
  ctnn::io::Dataset<Image> ds{ctnn::Batch<Image>(n), std::vector<std::int64_t>(n)};
  for (std::size_t i = 0; i < n * Image::size; ++i) ds.images.data()[i] = gen.uniform();
  for (auto& y : ds.labels) y = static_cast<std::int64_t>(gen.randint(10));
  return ds;
}

/// Every value of a state_dict, int64 buffers converted (exactly, at these sizes) to double.
std::vector<double> flatten(const ctnn::StateDict& sd) {
  std::vector<double> v;
  for (const auto& [name, t] : sd) {
    if (t.dtype() == ctnn::Dtype::int64) {
      for (std::size_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<double>(t.int64_data()[i]));
    } else {
      for (std::size_t i = 0; i < t.numel(); ++i) v.push_back(t[i]);
    }
  }
  return v;
}

/// Whether every rank holds bit-identical values to rank 0's (rank 0's are broadcast).
bool same_on_every_rank(const std::vector<double>& mine) {
  std::vector<double> root = mine;
  MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  int same = root == mine ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return same == 1;
}

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

/// Each entry of `a` equals `b`'s within rel: |a - b| <= rel (|b| + max |b| over the tensor),
/// torch.testing.assert_close's form with atol = rel times the tensor's scale (an entry that is
/// the small difference of large terms, such as a weight before a BatchNorm, has its neighbours'
/// absolute rounding). Prints the worst ratio to the tolerance.
void expect_close(const ctnn::StateDict& a, const ctnn::StateDict& b, double rel, const std::string& what) {
  if (a.size() != b.size()) return fail(what + ": the state_dicts differ in size");
  auto value = [](const ctnn::TensorRef& t, std::size_t i) {
    return t.dtype() == ctnn::Dtype::int64 ? double(t.int64_data()[i]) : double(t[i]);
  };
  double worst_all = 0;
  for (const auto& [name, t] : a) {
    const ctnn::TensorRef& u = b[name];
    double scale = 0;
    for (std::size_t i = 0; i < u.numel(); ++i) scale = std::max(scale, std::fabs(value(u, i)));
    double worst = 0, at_p = 0, at_q = 0;
    for (std::size_t i = 0; i < t.numel(); ++i) {
      const double p = value(t, i), q = value(u, i);
      const double err = std::fabs(p - q) / (rel * (std::fabs(q) + scale) + 1e-30);
      if (err > worst) worst = err, at_p = p, at_q = q;
    }
    worst_all = std::max(worst_all, worst);
    if (worst > 1)
      fail(what + ": " + name + " differs from 1 process on the whole batch (" + num(worst) +
           " times the tolerance: " + num(at_p) + " vs " + num(at_q) + ")");
  }
  if (dist::rank() == 0)
    std::printf("rank 0: %s: the worst entry is %s of the tolerance\n", what.c_str(), num(worst_all).c_str());
}

/// (a) `steps` SGD steps on w ranks against 1 process on the whole batch.
template <class Net>
void data_parallel_equals_one_process(const std::string& what, int threads) {
  constexpr std::size_t steps = 5, B = 16;
  const int r = dist::rank(), w = dist::world_size();
  const std::size_t b = B / static_cast<std::size_t>(w);
  const auto data = synthetic(steps * B, 42);

  Model<Net, Image> net(100 + static_cast<std::uint64_t>(r));  // differently seeded: broadcast fixes it
  dist::broadcast_parameters(net, 0);
  Model<Net, Image> ref(100);  // rank 0's seed: the same initial weights, on the whole batch
  net.set_num_threads(threads);
  ref.set_num_threads(threads);
  if (threads > 1 && net.threads_for_batch(b) < 2) fail(what + ": the local batch is not split over threads");

  nn::CrossEntropyLoss criterion;
  ctnn::optim::SGD sgd{.lr = 0.1f, .momentum = 0.9f}, sgd_ref{.lr = 0.1f, .momentum = 0.9f};
  ctnn::io::DataLoader<Image> shard(data, b, true, 7, false, {.num_replicas = std::size_t(w), .rank = std::size_t(r)});
  ctnn::io::DataLoader<Image> whole(data, B, true, 7);
  shard.set_epoch(3);
  whole.set_epoch(3);
  auto it = whole.begin();
  std::size_t done = 0;
  long allocated = 0;  // by allreduce_gradients after the first step
  for (auto [X, y] : shard) {
    net.forward(X);
    net.zero_grad();
    net.backward(criterion, y);
    const long before = ctnn_test::allocation_counter().load();
    dist::allreduce_gradients(net);
    if (done > 0) allocated += ctnn_test::allocation_counter().load() - before;
    sgd.step(net);

    auto [Xg, yg] = *it;
    ++it;
    dist::set_sync_batchnorm(false);  // the reference is one process: its statistics are its own
    ref.forward(Xg);
    ref.zero_grad();
    ref.backward(criterion, yg);
    sgd_ref.step(ref);
    dist::set_sync_batchnorm(true);
    ++done;
  }
  if (done != steps) fail(what + ": " + std::to_string(done) + " steps");
  if (allocated != 0)
    fail(what + ": allreduce_gradients allocated " + std::to_string(allocated) + " times after step 1");
  expect_close(net.state_dict(), ref.state_dict(), 1e-5, what);
  if (!same_on_every_rank(flatten(net.state_dict()))) fail(what + ": the ranks' models differ");
  // After training, evaluation needs no communication: every rank's running statistics agree.
  net.eval();
  ref.eval();
  const auto out = net(ctnn::ConstBatchView<Image>(data.images.data(), B));
  const auto expected = ref(ctnn::ConstBatchView<Image>(data.images.data(), B));
  for (std::size_t i = 0; i < out.numel(); ++i)
    if (std::fabs(out.data()[i] - expected.data()[i]) > 1e-4f * (1 + std::fabs(expected.data()[i])))
      return fail(what + ": eval outputs differ");
}

int mode_equal() {
  data_parallel_equals_one_process<ctnn::models::LeNet>("LeNet", 1);
  data_parallel_equals_one_process<BNNet>("BatchNorm net", 1);
  data_parallel_equals_one_process<BNNet>("BatchNorm net, 2 threads per rank", 2);
  return 0;
}

/// (b) Differently seeded ranks, with different running statistics, become the root's.
int mode_broadcast() {
  const int r = dist::rank(), w = dist::world_size(), root = w - 1;
  Model<BNNet, Image> net(7 + static_cast<std::uint64_t>(r));
  const auto data = synthetic(8, 5 + static_cast<std::uint64_t>(r));
  dist::set_sync_batchnorm(false);
  for (int i = 0; i <= r; ++i) net.forward(ctnn::ConstBatchView<Image>(data.images.data(), 8));  // r + 1 batches
  dist::set_sync_batchnorm(true);
  const auto before = flatten(net.state_dict());
  if (same_on_every_rank(before)) fail("the ranks start identical");
  dist::broadcast_parameters(net, root);
  const auto after = flatten(net.state_dict());
  if (r == root && after != before) fail("broadcast_parameters changed the root");
  std::vector<double> from_root = after;
  MPI_Bcast(from_root.data(), static_cast<int>(from_root.size()), MPI_DOUBLE, root, MPI_COMM_WORLD);
  if (from_root != after) fail("broadcast_parameters: this rank differs from the root");
  if (net.state_dict()["1.num_batches_tracked"].int64_data()[0] != root + 1)
    fail("num_batches_tracked is not the root's");
  try {
    dist::broadcast_parameters(net, w);
    fail("broadcast_parameters accepted root = world_size");
  } catch (const std::invalid_argument& e) {
    std::printf("rank %d: caught: %s\n", r, e.what());
  }
  return 0;
}

/// (c) Models that differ: the same std::runtime_error on every rank, nothing changed.
template <class A, class B>
void expect_mismatch_error(const std::string& what) {
  const int r = dist::rank();
  auto check = [&](auto& net) {
    // the input outlives the backward, which reads it (a temporary here left dW reading freed
    // memory: NaN gradients compared unequal to themselves, a flaky "the gradients changed")
    const ctnn::Batch<typename std::remove_reference_t<decltype(net)>::input_shape_type> x(2);
    net.forward(x);
    net.zero_grad();
    net.output_grad().data()[0] = 1.0f;
    net.backward();
    auto gradients = [&] {
      ctnn::StateDict g;
      for (const auto& [name, p] : net.named_parameters()) g.add(name, p.grad);
      return flatten(g);
    };
    const auto grads = gradients();
    const auto values = flatten(net.state_dict());
    try {
      dist::allreduce_gradients(net);
      fail(what + ": allreduce_gradients did not throw");
    } catch (const std::runtime_error& e) {
      std::printf("rank %d: caught: %s\n", r, e.what());
    }
    try {
      dist::broadcast_parameters(net, 0);
      fail(what + ": broadcast_parameters did not throw");
    } catch (const std::runtime_error& e) {
      std::printf("rank %d: caught: %s\n", r, e.what());
    }
    if (flatten(net.state_dict()) != values) fail(what + ": the model changed");
    if (gradients() != grads) fail(what + ": the gradients changed");
  };
  if (r == 0) {
    Model<A, Shape<4>> net(1);
    check(net);
  } else {
    Model<B, Shape<4>> net(1);
    check(net);
  }
}

int mode_mismatch() {
  // Different parameter counts, then the same count in other shapes.
  expect_mismatch_error<nn::Sequential<nn::Linear<4, 6>>, nn::Sequential<nn::Linear<4, 3>>>("count");
  expect_mismatch_error<nn::Sequential<nn::Linear<4, 6>>, nn::Sequential<nn::Linear<4, 2>, nn::ReLU, nn::Linear<2, 2>>>(
      "shapes");
  return 0;
}

/// (d) Rank 1 throws after its forward of step 3: rank 0 is then waiting in allreduce_gradients.
void steps_that_fail() {
  const int r = dist::rank();
  const auto data = synthetic(32, 1);
  Model<ctnn::models::LeNet, Image> net(1);
  net.set_num_threads(1);
  nn::CrossEntropyLoss criterion;
  ctnn::optim::SGD sgd{.lr = 0.1f};
  ctnn::io::DataLoader<Image> loader(data, 4, true, 0, false,
                                     {.num_replicas = std::size_t(dist::world_size()), .rank = std::size_t(r)});
  int step = 0;
  for (auto [X, y] : loader) {
    net.forward(X);
    if (++step == 3 && r == 1) throw std::runtime_error("injected failure in step 3");
    net.zero_grad();
    net.backward(criterion, y);
    dist::allreduce_gradients(net);
    sgd.step(net);
  }
}

/// Before init, everything but is_initialized throws std::logic_error.
void check_before_init() {
  Model<nn::Sequential<nn::Linear<4, 2>>, Shape<4>> net(1);
  auto expect = [](auto&& f, const char* name) {
    try {
      f();
      std::printf("FAILED: %s ran before init\n", name);
      ++failures;
    } catch (const std::logic_error& e) {
      if (std::string(e.what()).find("call ctnn::dist::init") == std::string::npos) {
        std::printf("FAILED: %s: unclear message: %s\n", name, e.what());
        ++failures;
      }
    }
  };
  expect([] { (void)dist::rank(); }, "rank");
  expect([] { (void)dist::world_size(); }, "world_size");
  expect([&] { dist::broadcast_parameters(net, 0); }, "broadcast_parameters");
  expect([&] { dist::allreduce_gradients(net); }, "allreduce_gradients");
  expect([] { dist::finalize(); }, "finalize");
  if (dist::is_initialized() || dist::sync_batchnorm()) {
    std::printf("FAILED: initialized before init\n");
    ++failures;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  check_before_init();
  if (mode == "throw-scope") {
    try {
      dist::Context mpi(argc, argv);
      steps_that_fail();
    } catch (const std::exception& e) {  // never reached on rank 1: the Context's destructor ends the job
      std::printf("rank ?: caught %s after the Context was gone\n", e.what());
    }
    return 0;
  }
  dist::Context mpi(argc, argv);
  if (dist::world_size() < 2) fail("run me with mpirun -np 2 (or more)");
  if (mode == "equal") mode_equal();
  else if (mode == "broadcast") mode_broadcast();
  else if (mode == "mismatch") mode_mismatch();
  else if (mode == "throw") steps_that_fail();
  else fail("unknown mode '" + mode + "' (equal, broadcast, mismatch, throw, throw-scope)");
  if (failures == 0) std::printf("rank %d: %s OK\n", dist::rank(), mode.c_str());
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}
