// oneDNN baseline for bench_forward (compiled in with -Dbaselines=enabled): the MLP
// 20 -> 256 -> 10 as two dnnl_sgemm calls (row-major, y = x w^T; each output pre-filled with the
// bias and accumulated into with beta = 1) and a ReLU loop, on one thread (OMP_NUM_THREADS=1).
#include "common.hpp"

#include <algorithm>
#include <oneapi/dnnl/dnnl.h>
#include <random>
#include <vector>

using namespace ctnn_bench;

namespace {

std::vector<float> random_floats(std::size_t n) {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(gen);
  return v;
}

// rows of y[n, O] = bias, then y += x[n, K] w[O, K]^T
template <std::size_t K, std::size_t O>
void linear(const float* x, const std::vector<float>& w, const std::vector<float>& b, float* y, std::size_t n) {
  for (std::size_t m = 0; m < n; ++m) std::copy(b.begin(), b.end(), y + m * O);
  dnnl_sgemm('N', 'T', dnnl_dim_t(n), dnnl_dim_t(O), dnnl_dim_t(K), 1.0f, x, dnnl_dim_t(K), w.data(), dnnl_dim_t(K),
             1.0f, y, dnnl_dim_t(O));
}

void BM_mlp_forward_onednn(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto w1 = random_floats(mlp_hidden * mlp_in), b1 = random_floats(mlp_hidden);
  auto w2 = random_floats(mlp_out * mlp_hidden), b2 = random_floats(mlp_out);
  auto x = random_floats(n * mlp_in);
  std::vector<float> h(n * mlp_hidden), y(n * mlp_out);
  for (auto _ : state) {
    linear<mlp_in, mlp_hidden>(x.data(), w1, b1, h.data(), n);
    for (auto& v : h) v = std::max(v, 0.0f);
    linear<mlp_hidden, mlp_out>(h.data(), w2, b2, y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, mlp_flops_per_sample * double(n));
}
BENCHMARK(BM_mlp_forward_onednn)->Name("BM_mlp_forward/onednn")->Arg(1)->Arg(64)->Arg(256)->MeasureProcessCPUTime();

}  // namespace
