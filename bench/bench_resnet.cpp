// D2L chapter 8's networks with BatchNorm: ResNet-18 (8.6) and BN-LeNet (8.5), as
// ctnn::models::ResNet18 and ctnn::models::BNLeNet (include/ctnn/models/d2l.hpp, with the book's
// PyTorch code). libtorch's identical networks are in bench_resnet_torch.cpp
// (-Dbaselines=enabled). One thread unless noted; process CPU time, wall time for the thread rows.
//
//   BM_resnet18_train_step/<impl>/<side>/64   zero_grad, forward, cross-entropy, backward, SGD
//                                             (lr 0.05) on [64, 1, side, side], side 28 or 96
//   BM_resnet18_eval_forward/<impl>/<side>/64 forward in evaluation mode (BatchNorm's running
//                                             statistics; libtorch under NoGradGuard)
//   BM_bn_lenet_train_step/<impl>/256         the training step of BN-LeNet at batch 256 (lr 1.0)
//   BM_resnet18_train_step_threads/ctnn/<T>   ResNet-18's 28 x 28 step at T = 1 and 2 threads
//   BM_bn_lenet_train_step_threads/ctnn/<T>   BN-LeNet's step at T = 1 and 2 threads
//   BM_resnet18_parameter_passes_threads/ctnn/<T>  the part of ResNet-18's step that reads and
//                                             writes every parameter and gradient and does no
//                                             more with a batch: zero_grad and SGD's update
//                                             (11.2 M floats, 45 MB an array), at T = 1 and 2
//   BM_resnet18_stage3_conv_threads/ctnn/<T>  one product and nothing else: the forward of a
//                                             256-channel 3x3 conv on 2x2 maps (the dense form's
//                                             [64, 1024] x [1024, 1024], weights prepared once),
//                                             the batch split over T = 1 and 2 threads by samples
//
// Every benchmark runs one untimed step (or forward) first: the workspace grows, and libtorch's
// allocator fills, on the first. A 96 x 96 ResNet-18 step takes seconds (about 2 s in libtorch on
// the project's VM): longer than Google Benchmark's minimum time (0.5 s), so each repetition of
// those rows is one timed step, and 5 repetitions of the whole binary take a few minutes. (No
// per-benchmark MinTime or Iterations: Google Benchmark would append "/min_time:..." or
// "/iterations:..." to the names.)
//
//   build/bench/bench/bench_resnet --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//   build/bench/bench/bench_resnet --benchmark_filter='bn_lenet'   # the fast rows only
#include "common.hpp"
#include "fma_peak.hpp"

#include <cstdint>
#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>
#include <type_traits>
#include <vector>

namespace nn = ctnn::nn;
using namespace ctnn_bench;

namespace {

using ctnn::models::BNLeNet;
using ctnn::models::ResNet18;

/// One Fashion-MNIST image at side x side: 28 (ctnn::models::FashionMNISTImage) or the 96 x 96 of
/// d2l.FashionMNIST(resize=(96, 96)) (ctnn::models::FashionMNIST96).
template <std::size_t Side>
using Image = ctnn::Shape<1, Side, Side>;
static_assert(std::is_same_v<Image<28>, ctnn::models::FashionMNISTImage>);
static_assert(std::is_same_v<Image<96>, ctnn::models::FashionMNIST96>);

constexpr auto resnet_n = static_cast<std::int64_t>(resnet_batch);
constexpr auto bn_lenet_n = static_cast<std::int64_t>(bn_lenet_batch);

void count_examples(benchmark::State& state, std::size_t batch) {
  state.counters["examples/s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}

/// A model with what a training step needs: a fixed random batch of `batch` images (labels 0..9
/// in turn), cross-entropy, SGD.
template <class Net, class In>
struct Training {
  ctnn::Model<Net, In> net;
  ctnn::Batch<In> X;
  std::vector<std::int64_t> y;
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd;
  Training(std::size_t batch, float lr) : X(ctnn::rand<In>(batch)), y(batch), sgd{.lr = lr} {
    for (std::size_t i = 0; i < batch; ++i) y[i] = static_cast<std::int64_t>(i % 10);
  }
  /// zero_grad, forward, cross-entropy backward, SGD step.
  void step() {
    net.zero_grad();
    net.forward(X);
    benchmark::DoNotOptimize(net.backward(loss, y));
    sgd.step(net);
  }
};

/// Training steps on `threads` threads.
template <class Net, class In>
void train_steps(benchmark::State& state, int threads, std::size_t batch, float lr) {
  ctnn::set_num_threads(threads);
  Training<Net, In> t(batch, lr);
  t.step();  // untimed: the workspace grows on the first step
  for (auto _ : state) t.step();
  count_examples(state, batch);
  ctnn::set_num_threads(1);
}

/// The forward in evaluation mode (net.eval()), one thread.
template <class Net, class In>
void eval_forwards(benchmark::State& state, std::size_t batch) {
  ctnn::set_num_threads(1);
  ctnn::Model<Net, In> net;
  net.eval();
  auto X = ctnn::rand<In>(batch);
  benchmark::DoNotOptimize(net.forward(X).data());  // untimed
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(X).data());
  count_examples(state, batch);
}

// ---- ResNet-18 -------------------------------------------------------------------------------

template <std::size_t Side>
void BM_resnet18_train_step_ctnn(benchmark::State& state) {
  train_steps<ResNet18, Image<Side>>(state, 1, resnet_batch, resnet_lr);
}
BENCHMARK(BM_resnet18_train_step_ctnn<28>)
    ->Name("BM_resnet18_train_step/ctnn")
    ->Args({28, resnet_n})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet18_train_step_ctnn<96>)
    ->Name("BM_resnet18_train_step/ctnn")
    ->Args({96, resnet_n})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

template <std::size_t Side>
void BM_resnet18_eval_forward_ctnn(benchmark::State& state) {
  eval_forwards<ResNet18, Image<Side>>(state, resnet_batch);
}
BENCHMARK(BM_resnet18_eval_forward_ctnn<28>)
    ->Name("BM_resnet18_eval_forward/ctnn")
    ->Args({28, resnet_n})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet18_eval_forward_ctnn<96>)
    ->Name("BM_resnet18_eval_forward/ctnn")
    ->Args({96, resnet_n})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

// Thread scaling: the argument is the thread count; wall time, since two threads' CPU time is
// the sum of both. (On a machine shared with other jobs the second core may be busy.)
void BM_resnet18_train_step_threads_ctnn(benchmark::State& state) {
  train_steps<ResNet18, Image<28>>(state, int(state.range(0)), resnet_batch, resnet_lr);
}
BENCHMARK(BM_resnet18_train_step_threads_ctnn)
    ->Name("BM_resnet18_train_step_threads/ctnn")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The step's passes over all the parameters (zero_grad writes 45 MB of gradients, SGD reads the
// weights and gradients and writes the weights: 180 MB of memory traffic, larger than the caches):
// bound by memory bandwidth, which one core of the project's VM already saturates, so a second
// thread hardly shortens them. With the step at T = 1 and 2 they bound what 2 threads can gain
// (docs/benchmarks.md).
void BM_resnet18_parameter_passes_threads_ctnn(benchmark::State& state) {
  ctnn::set_num_threads(int(state.range(0)));
  Training<ResNet18, Image<28>> t(resnet_batch, resnet_lr);
  t.step();  // untimed: every gradient exists
  for (auto _ : state) {
    t.net.zero_grad();
    t.sgd.step(t.net);
  }
  ctnn::set_num_threads(1);
}
BENCHMARK(BM_resnet18_parameter_passes_threads_ctnn)
    ->Name("BM_resnet18_parameter_passes_threads/ctnn")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// How far two threads speed up pure arithmetic on this machine (no pass over the parameters, no
// barrier inside the product): a split batch's slices each run the product on their samples,
// reading the same prepared weights (4 MiB, in the shared L3).
void BM_resnet18_stage3_conv_threads_ctnn(benchmark::State& state) {
  constexpr ctnn::kernels::Conv2dGeometry G{256, 2, 2, 256, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, ctnn::PaddingMode::zeros};
  constexpr std::size_t in = 256 * 2 * 2, out = 256 * 2 * 2, n = resnet_batch;
  const auto T = static_cast<std::size_t>(state.range(0));
  auto x = ctnn::rand<ctnn::Shape<in>>(n);
  auto w = ctnn::rand<ctnn::Shape<256 * 256 * 9>>(1);
  ctnn::Batch<ctnn::Shape<out>> y(n);
  ctnn::Batch<ctnn::Shape<ctnn::kernels::conv2d_prepared_floats<G>>> prepared(1);
  std::vector<ctnn::detail::aligned_floats> scratch;  // each thread's, 64-byte aligned
  for (std::size_t t = 0; t < T; ++t)
    scratch.push_back(ctnn::detail::allocate_floats(ctnn::kernels::conv2d_scratch_floats<G>));
  ctnn::kernels::conv2d_prepare<G>(w.data(), prepared.data(), ctnn::kernels::Conv2dPass::forward);
  auto product = [&](std::size_t t) {
    const std::size_t b = n * t / T, m = n * (t + 1) / T - b;
    ctnn::kernels::conv2d_forward<G, false>(x.data() + b * in, w.data(), nullptr, y.data() + b * out, m,
                                            scratch[t].get(), prepared.data());
  };
  for (auto _ : state) ctnn::detail::parallel_for(T, product);
  benchmark::DoNotOptimize(y.data());
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(n) * double(in) * double(out) * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_resnet18_stage3_conv_threads_ctnn)
    ->Name("BM_resnet18_stage3_conv_threads/ctnn")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// ---- BN-LeNet --------------------------------------------------------------------------------

void BM_bn_lenet_train_step_ctnn(benchmark::State& state) {
  train_steps<BNLeNet, Image<28>>(state, 1, bn_lenet_batch, bn_lenet_lr);
}
BENCHMARK(BM_bn_lenet_train_step_ctnn)
    ->Name("BM_bn_lenet_train_step/ctnn")
    ->Arg(bn_lenet_n)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

void BM_bn_lenet_train_step_threads_ctnn(benchmark::State& state) {
  train_steps<BNLeNet, Image<28>>(state, int(state.range(0)), bn_lenet_batch, bn_lenet_lr);
}
BENCHMARK(BM_bn_lenet_train_step_threads_ctnn)
    ->Name("BM_bn_lenet_train_step_threads/ctnn")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

CTNN_BENCH_MAIN();
