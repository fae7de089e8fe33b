// Forward-pass microbenchmarks: ctnn against a plain-loop baseline in the same run.
// (libtorch and oneDNN baselines come with the performance work, behind -Dbaselines=enabled.)
//
//   build/release/bench/bench_forward --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <ctnn/ctnn.hpp>
#include <vector>

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;

namespace {

using MLP = nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>;

void BM_ctnn_mlp_forward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Model<MLP, Shape<20>> net;
  auto X = ctnn::rand<Shape<20>>(n);
  net.reserve(n);
  for (auto _ : state) {
    auto Y = net.forward(X);
    benchmark::DoNotOptimize(Y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * (20 * 256 + 256 * 10) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ctnn_mlp_forward)->Arg(1)->Arg(64)->Arg(256);

// Baseline: the same MLP as straightforward loops over row-major weights (what a careful user
// writes by hand), compiled with the same flags.
void BM_loops_mlp_forward(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Model<MLP, Shape<20>> net;
  const float *w1 = net.get<0>().weight.data(), *b1 = net.get<0>().bias.data();
  const float *w2 = net.get<2>().weight.data(), *b2 = net.get<2>().bias.data();
  auto X = ctnn::rand<Shape<20>>(n);
  std::vector<float> h(n * 256), y(n * 10);
  for (auto _ : state) {
    for (std::size_t m = 0; m < n; ++m) {
      for (std::size_t o = 0; o < 256; ++o) {
        float s = b1[o];
        for (std::size_t k = 0; k < 20; ++k) s += X.data()[m * 20 + k] * w1[o * 20 + k];
        h[m * 256 + o] = s > 0 ? s : 0;
      }
      for (std::size_t o = 0; o < 10; ++o) {
        float s = b2[o];
        for (std::size_t k = 0; k < 256; ++k) s += h[m * 256 + k] * w2[o * 256 + k];
        y[m * 10 + o] = s;
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * n * (20 * 256 + 256 * 10) * state.iterations(),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_loops_mlp_forward)->Arg(1)->Arg(64)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
