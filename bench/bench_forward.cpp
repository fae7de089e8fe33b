// MLP 20 -> 256 -> 10 (Linear, ReLU, Linear) forward on one thread at batch 1, 64 and 256
// (and the FMA peak, fma_peak.hpp): ctnn (as a Model and after ctnn::freeze) against plain
// loops here; Eigen (bench_forward_eigen.cpp), libtorch (bench_forward_torch.cpp) and oneDNN
// (bench_forward_onednn.cpp) with -Dbaselines=enabled.
//
//   build/bench/bench/bench_forward --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "common.hpp"
#include "fma_peak.hpp"

#include <ctnn/ctnn.hpp>
#include <vector>

namespace nn = ctnn::nn;
using namespace ctnn_bench;

namespace {

using MLP = nn::Sequential<nn::Linear<mlp_in, mlp_hidden>, nn::ReLU, nn::Linear<mlp_hidden, mlp_out>>;

// The ReLU runs in the first GEMM's epilogue; forward returns a view into the workspace (no
// allocation once reserve(n) has run). Frozen: the same network after ctnn::freeze
// (torch.jit.freeze), a snapshot whose Linear weights are packed for the GEMM once, so forward
// packs nothing (at batch 1 the packed path then replaces the dot path's reductions along k).
template <bool Frozen>
void BM_mlp_forward_ctnn(benchmark::State& state) {
  ctnn::set_num_threads(1);
  const auto n = static_cast<std::size_t>(state.range(0));
  ctnn::Model<MLP, ctnn::Shape<mlp_in>> model;
  auto run = [&](auto& net) {
    auto X = ctnn::rand<ctnn::Shape<mlp_in>>(n);
    net.reserve(n);
    for (auto _ : state) benchmark::DoNotOptimize(net.forward(X).data());
  };
  if constexpr (Frozen) {
    auto frozen = ctnn::freeze(model);
    run(frozen);
  } else {
    run(model);
  }
  set_flops(state, mlp_flops_per_sample * double(n));
}
BENCHMARK(BM_mlp_forward_ctnn<false>)->Name("BM_mlp_forward/ctnn")->Arg(1)->Arg(64)->Arg(256)->MeasureProcessCPUTime();
BENCHMARK(BM_mlp_forward_ctnn<true>)
    ->Name("BM_mlp_forward/ctnn_frozen")
    ->Arg(1)
    ->Arg(64)
    ->Arg(256)
    ->MeasureProcessCPUTime();

// The same MLP as straightforward loops over PyTorch's row-major [out, in] weights, every size
// a compile-time constant (what a careful user writes by hand), compiled with the same flags.
void BM_mlp_forward_loops(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  ctnn::Model<MLP, ctnn::Shape<mlp_in>> net;  // only for its initialized parameters
  const float *w1 = net.get<0>().weight.data(), *b1 = net.get<0>().bias.data();
  const float *w2 = net.get<2>().weight.data(), *b2 = net.get<2>().bias.data();
  auto X = ctnn::rand<ctnn::Shape<mlp_in>>(n);
  std::vector<float> h(n * mlp_hidden), y(n * mlp_out);
  for (auto _ : state) {
    for (std::size_t m = 0; m < n; ++m) {
      const float* x = X.data() + m * mlp_in;
      for (std::size_t o = 0; o < mlp_hidden; ++o) {
        float s = b1[o];
        for (std::size_t k = 0; k < mlp_in; ++k) s += x[k] * w1[o * mlp_in + k];
        h[m * mlp_hidden + o] = s > 0 ? s : 0;
      }
      for (std::size_t o = 0; o < mlp_out; ++o) {
        float s = b2[o];
        for (std::size_t k = 0; k < mlp_hidden; ++k) s += h[m * mlp_hidden + k] * w2[o * mlp_hidden + k];
        y[m * mlp_out + o] = s;
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, mlp_flops_per_sample * double(n));
}
BENCHMARK(BM_mlp_forward_loops)->Name("BM_mlp_forward/loops")->Arg(1)->Arg(64)->Arg(256)->MeasureProcessCPUTime();

}  // namespace

CTNN_BENCH_MAIN();
