// libtorch baseline for bench_lenet (compiled in with -Dbaselines=enabled): the same LeNet in
// torch::nn, the same batch (256), cross-entropy and SGD learning rate, on one thread.
#include "common.hpp"

#include <torch/torch.h>

using namespace ctnn_bench;
namespace tnn = torch::nn;

namespace {

// D2L's LeNet: nn.Sequential(Conv2d(1, 6, 5, padding=2), Sigmoid, AvgPool2d(2, 2),
// Conv2d(6, 16, 5), Sigmoid, AvgPool2d(2, 2), Flatten, Linear(400, 120), Sigmoid,
// Linear(120, 84), Sigmoid, Linear(84, 10)).
tnn::Sequential lenet() {
  return tnn::Sequential(tnn::Conv2d(tnn::Conv2dOptions(1, 6, 5).padding(2)), tnn::Sigmoid(),
                         tnn::AvgPool2d(tnn::AvgPool2dOptions(2).stride(2)), tnn::Conv2d(tnn::Conv2dOptions(6, 16, 5)),
                         tnn::Sigmoid(), tnn::AvgPool2d(tnn::AvgPool2dOptions(2).stride(2)), tnn::Flatten(),
                         tnn::Linear(16 * 5 * 5, 120), tnn::Sigmoid(), tnn::Linear(120, 84), tnn::Sigmoid(),
                         tnn::Linear(84, 10));
}

const auto batch = static_cast<std::int64_t>(lenet_batch);

void BM_lenet_forward_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  auto net = lenet();
  auto X = torch::rand({batch, 1, 28, 28});
  for (auto _ : state) {
    auto Y = net->forward(X);
    benchmark::DoNotOptimize(Y.data_ptr<float>());
  }
  state.counters["examples/s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_lenet_forward_libtorch)
    ->Name("BM_lenet_forward/libtorch")
    ->Arg(batch)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

void BM_lenet_train_step_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  auto net = lenet();
  auto X = torch::rand({batch, 1, 28, 28});
  auto y = torch::arange(batch, torch::kLong).remainder(10);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(double(lenet_lr)));
  for (auto _ : state) {
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(X), y);
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.counters["examples/s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_lenet_train_step_libtorch)
    ->Name("BM_lenet_train_step/libtorch")
    ->Arg(batch)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
