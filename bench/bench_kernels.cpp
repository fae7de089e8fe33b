// Kernels on one thread: sgemm 256^3, and Conv2d 64->64 3x3 + ReLU on [1, 64, 56, 56]; and
// this core's FMA peak (fma_peak.hpp). ctnn against plain loops here; libtorch
// (bench_kernels_torch.cpp) and oneDNN (bench_kernels_onednn.cpp) with -Dbaselines=enabled.
//
//   build/bench/bench/bench_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "common.hpp"
#include "fma_peak.hpp"

#include <algorithm>
#include <ctnn/ctnn.hpp>
#include <ctnn/kernels/gemm.hpp>
#include <vector>

namespace nn = ctnn::nn;
using namespace ctnn_bench;

namespace {

// ---- sgemm 256^3 ----------------------------------------------------------------------------
// y[256, 256] = x[256, 256] w[256, 256]^T with ctnn's Linear kernel (no bias, no activation):
// it packs w into scratch on every call, as a Linear layer's forward does.
void BM_sgemm_ctnn(benchmark::State& state) {
  constexpr std::size_t n = gemm_n;
  auto x = ctnn::rand<ctnn::Shape<n>>(n), w = ctnn::rand<ctnn::Shape<n>>(n);
  ctnn::Batch<ctnn::Shape<n>> y(n);
  ctnn::Batch<ctnn::Shape<ctnn::kernels::linear_scratch_floats<n, n>>> scratch(1);  // 64-byte aligned
  // M is a run-time value for the kernel, as in a model (a constant 256 lets g++ 12 analyse
  // the leftover-rows loop and warn about an iteration that cannot happen).
  std::size_t rows = n;
  benchmark::DoNotOptimize(rows);
  for (auto _ : state) {
    ctnn::kernels::linear_forward<n, n>(x.data(), w.data(), nullptr, y.data(), rows, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, gemm_flops);
}
BENCHMARK(BM_sgemm_ctnn)->Name("BM_sgemm/ctnn")->Arg(gemm_n)->MeasureProcessCPUTime();

// Plain loops, i-k-j order so the inner loop runs along contiguous rows and vectorizes; w is
// transposed once outside the timed loop (the loops get that for free).
void BM_sgemm_loops(benchmark::State& state) {
  constexpr std::size_t n = gemm_n;
  auto x = ctnn::rand<ctnn::Shape<n>>(n), w = ctnn::rand<ctnn::Shape<n>>(n);
  std::vector<float> wt(n * n), y(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) wt[j * n + i] = w.data()[i * n + j];
  for (auto _ : state) {
    std::fill(y.begin(), y.end(), 0.0f);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < n; ++k) {
        const float xik = x.data()[i * n + k];
        for (std::size_t j = 0; j < n; ++j) y[i * n + j] += xik * wt[k * n + j];
      }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, gemm_flops);
}
BENCHMARK(BM_sgemm_loops)->Name("BM_sgemm/loops")->Arg(gemm_n)->MeasureProcessCPUTime();

// ---- Conv2d 64 -> 64, 3x3, padding 1, + ReLU on [1, 64, 56, 56] -------------------------------
// ctnn fuses the ReLU into the convolution's epilogue; every baseline applies ReLU too.
using ConvReLU =
    nn::Sequential<nn::Conv2d<{.in_channels = conv_c, .out_channels = conv_c, .kernel_size = conv_k, .padding = 1}>,
                   nn::ReLU>;
using ConvIn = ctnn::Shape<conv_c, conv_hw, conv_hw>;

void BM_conv_ctnn(benchmark::State& state) {
  ctnn::set_num_threads(1);
  ctnn::Model<ConvReLU, ConvIn> net;
  auto X = ctnn::rand<ConvIn>(1);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(X).data());
  set_flops(state, conv_flops);
}
BENCHMARK(BM_conv_ctnn)->Name("BM_conv_relu/ctnn")->Arg(1)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

// Plain loops: for each (output channel, input channel, kernel tap), one shifted
// multiply-add over whole output rows (the inner loop runs along W and vectorizes), then ReLU.
void BM_conv_loops(benchmark::State& state) {
  constexpr std::size_t C = conv_c, HW = conv_hw, K = conv_k;
  auto X = ctnn::rand<ConvIn>(1);
  auto W = ctnn::rand<ctnn::Shape<C, C, K, K>>();
  auto B = ctnn::rand<ctnn::Shape<C>>();
  std::vector<float> y(C * HW * HW);
  const float *x = X.data(), *w = W.data(), *b = B.data();
  for (auto _ : state) {
    for (std::size_t o = 0; o < C; ++o) {
      float* yo = y.data() + o * HW * HW;
      std::fill(yo, yo + HW * HW, b[o]);
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t kh = 0; kh < K; ++kh)
          for (std::size_t kw = 0; kw < K; ++kw) {
            const float wv = w[((o * C + c) * K + kh) * K + kw];
            for (std::size_t h = 0; h < HW; ++h) {
              const std::ptrdiff_t ih = std::ptrdiff_t(h + kh) - 1;  // padding 1
              if (ih < 0 || ih >= std::ptrdiff_t(HW)) continue;
              const float* xr = x + (c * HW + std::size_t(ih)) * HW;
              float* yr = yo + h * HW;
              // output column j reads input column j + kw - 1; skip the padded edge
              const std::size_t j0 = kw == 0 ? 1 : 0, j1 = kw == K - 1 ? HW - 1 : HW;
              for (std::size_t j = j0; j < j1; ++j) yr[j] += wv * xr[j + kw - 1];
            }
          }
      for (std::size_t i = 0; i < HW * HW; ++i) yo[i] = std::max(yo[i], 0.0f);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, conv_flops);
}
BENCHMARK(BM_conv_loops)->Name("BM_conv_relu/loops")->Arg(1)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

}  // namespace

CTNN_BENCH_MAIN();
