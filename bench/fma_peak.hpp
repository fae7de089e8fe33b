// BM_fma_peak/ctnn: this core's single-precision FMA peak, in FLOP/s. Each bench binary's ctnn
// translation unit includes this header once, so every binary measures the peak in the same
// run as its workloads (this shared machine's load changes from minute to minute);
// tools/plot_benchmarks.py divides each FLOP/s counter by the peak of its own file.
#pragma once

#include "common.hpp"

#include <ctnn/kernels/simd.hpp>

namespace {

// 12 independent chains acc = acc * a + b over xsimd::batch<float> (ctnn's kernel vector: 16
// lanes with AVX-512, 8 with AVX2), 2 FLOP per lane per FMA. A core issues up to 2 FMAs per
// cycle with a 4-cycle latency, so 8 chains keep it busy; 12 leave a margin and, with a and b,
// fit in AVX2's 16 vector registers too. Floating-point addition is not associative, so the
// compiler cannot shorten the chains; a < 1 keeps the values bounded (they converge to
// b / (1 - a), far from overflow and denormals).
void BM_fma_peak(benchmark::State& state) {
  using vfloat = xsimd::batch<float>;
  constexpr int chains = 12, steps = 1024;
  float a_ = 0.999f, b_ = 1e-3f;
  benchmark::DoNotOptimize(a_);
  benchmark::DoNotOptimize(b_);
  const vfloat a(a_), b(b_);
  vfloat acc[chains];
  for (int c = 0; c < chains; ++c) acc[c] = vfloat(float(c));
  for (auto _ : state) {
    for (int s = 0; s < steps; ++s)
      for (int c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
    for (int c = 0; c < chains; ++c) benchmark::DoNotOptimize(acc[c]);
  }
  ctnn_bench::set_flops(state, 2.0 * vfloat::size * chains * steps);
}
BENCHMARK(BM_fma_peak)->Name("BM_fma_peak/ctnn")->MeasureProcessCPUTime();

}  // namespace
