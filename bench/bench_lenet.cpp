// D2L's LeNet at batch 256 on one thread: forward, and a full training step (forward, cross-entropy,
// backward, SGD). libtorch / oneDNN baselines come with -Dbaselines=enabled (the performance work).
//
//   build/release/bench/bench_lenet --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <ctnn/ctnn.hpp>
#include <vector>

namespace nn = ctnn::nn;
using ctnn::Model, ctnn::Shape;

namespace {

using LeNet = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::Sigmoid,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>,
    nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>, nn::Sigmoid,
    nn::LazyLinear<84>, nn::Sigmoid, nn::LazyLinear<10>>;
constexpr std::size_t batch = 256;

void BM_ctnn_lenet_forward(benchmark::State& state) {
  ctnn::set_num_threads(1);
  Model<LeNet, Shape<1, 28, 28>> net;
  auto X = ctnn::rand<Shape<1, 28, 28>>(batch);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(X).data());
  state.counters["examples/s"] = benchmark::Counter(double(batch) * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ctnn_lenet_forward)->Unit(benchmark::kMillisecond);

void BM_ctnn_lenet_train_step(benchmark::State& state) {
  ctnn::set_num_threads(1);
  Model<LeNet, Shape<1, 28, 28>> net;
  auto X = ctnn::rand<Shape<1, 28, 28>>(batch);
  std::vector<std::int64_t> y(batch);
  for (std::size_t i = 0; i < batch; ++i) y[i] = static_cast<std::int64_t>(i % 10);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd{.lr = 0.01f};
  for (auto _ : state) {
    net.zero_grad();
    net.forward(X);
    benchmark::DoNotOptimize(net.backward(loss, y));
    sgd.step(net);
  }
  state.counters["examples/s"] = benchmark::Counter(double(batch) * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ctnn_lenet_train_step)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
