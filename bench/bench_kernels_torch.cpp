// libtorch baselines for bench_kernels (compiled in with -Dbaselines=enabled): sgemm through
// torch::mm_out (OpenBLAS) and Conv2d + ReLU through torch::conv2d, on one thread.
#include "common.hpp"

#include <torch/torch.h>

using namespace ctnn_bench;

namespace {

// y = x w^T into a preallocated y (w^T is a strided view: BLAS reads it transposed).
void BM_sgemm_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  const auto n = static_cast<std::int64_t>(gemm_n);
  auto x = torch::rand({n, n}), w = torch::rand({n, n}), y = torch::empty({n, n});
  for (auto _ : state) {
    torch::mm_out(y, x, w.t());
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  set_flops(state, gemm_flops);
}
BENCHMARK(BM_sgemm_libtorch)->Name("BM_sgemm/libtorch")->Arg(gemm_n)->MeasureProcessCPUTime();

// NCHW in and out, as a PyTorch user calls it: conv2d (a new output tensor) and relu_ in place.
void BM_conv_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  const auto c = static_cast<std::int64_t>(conv_c), hw = static_cast<std::int64_t>(conv_hw);
  auto x = torch::rand({1, c, hw, hw});
  auto w = torch::rand({c, c, static_cast<std::int64_t>(conv_k), static_cast<std::int64_t>(conv_k)});
  auto b = torch::rand({c});
  for (auto _ : state) {
    auto y = torch::conv2d(x, w, b, /*stride=*/1, /*padding=*/1);
    torch::relu_(y);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  set_flops(state, conv_flops);
}
BENCHMARK(BM_conv_libtorch)
    ->Name("BM_conv_relu/libtorch")
    ->Arg(1)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
