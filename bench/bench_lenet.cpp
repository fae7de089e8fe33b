// D2L's LeNet at batch 256: forward, and a full training step (zero_grad, forward,
// cross-entropy, backward, SGD), on one thread; the training step again at 1 and 2 threads
// (wall time) for ctnn's own thread scaling; and the FMA peak (fma_peak.hpp). libtorch's
// identical network is in bench_lenet_torch.cpp (-Dbaselines=enabled).
//
//   build/bench/bench/bench_lenet --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "common.hpp"
#include "fma_peak.hpp"

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>
#include <vector>

namespace nn = ctnn::nn;
using namespace ctnn_bench;

namespace {

using ctnn::models::LeNet;  // D2L's, with its PyTorch code: include/ctnn/models/d2l.hpp
using Image = ctnn::models::FashionMNISTImage;

void BM_lenet_forward_ctnn(benchmark::State& state) {
  ctnn::set_num_threads(1);
  ctnn::Model<LeNet, Image> net;
  auto X = ctnn::rand<Image>(lenet_batch);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(X).data());
  state.counters["examples/s"] =
      benchmark::Counter(double(lenet_batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_lenet_forward_ctnn)
    ->Name("BM_lenet_forward/ctnn")
    ->Arg(lenet_batch)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

void train_steps(benchmark::State& state, int threads) {
  ctnn::set_num_threads(threads);
  ctnn::Model<LeNet, Image> net;
  auto X = ctnn::rand<Image>(lenet_batch);
  std::vector<std::int64_t> y(lenet_batch);
  for (std::size_t i = 0; i < lenet_batch; ++i) y[i] = static_cast<std::int64_t>(i % 10);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd{.lr = lenet_lr};
  for (auto _ : state) {
    net.zero_grad();
    net.forward(X);
    benchmark::DoNotOptimize(net.backward(loss, y));
    sgd.step(net);
  }
  state.counters["examples/s"] =
      benchmark::Counter(double(lenet_batch) * double(state.iterations()), benchmark::Counter::kIsRate);
  ctnn::set_num_threads(1);
}

void BM_lenet_train_step_ctnn(benchmark::State& state) { train_steps(state, 1); }
BENCHMARK(BM_lenet_train_step_ctnn)
    ->Name("BM_lenet_train_step/ctnn")
    ->Arg(lenet_batch)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

// Thread scaling: the argument is the thread count; wall time, since two threads' CPU time is
// the sum of both. (On a machine shared with other jobs the second core may be busy.)
void BM_lenet_train_step_threads_ctnn(benchmark::State& state) { train_steps(state, int(state.range(0))); }
BENCHMARK(BM_lenet_train_step_threads_ctnn)
    ->Name("BM_lenet_train_step_threads/ctnn")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

CTNN_BENCH_MAIN();
