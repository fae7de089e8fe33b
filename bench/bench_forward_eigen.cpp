// Eigen baseline for bench_forward (compiled in with -Dbaselines=enabled): the MLP
// 20 -> 256 -> 10 with Eigen's default (column-major) matrices, written as an Eigen user would.
// Batch 1 uses fixed-size matrices (every size a template argument, as in ctnn); batches 64 and
// 256 use dynamic matrices with one sample per column, so the products are Eigen's GEMM.
#include "common.hpp"

#include <memory>

// g++ 12's false "'__Y' may be used uninitialized" inside the AVX-512 intrinsics (GCC bug
// 105593), as in include/ctnn/kernels/simd.hpp: silenced where the intrinsics are declared.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <Eigen/Dense>
#pragma GCC diagnostic pop
#else
#include <Eigen/Dense>
#endif

using namespace ctnn_bench;

namespace {

constexpr int in = mlp_in, hidden = mlp_hidden, out = mlp_out;

struct FixedMLP {
  Eigen::Matrix<float, hidden, in> w1 = Eigen::Matrix<float, hidden, in>::Random();
  Eigen::Matrix<float, hidden, 1> b1 = Eigen::Matrix<float, hidden, 1>::Random();
  Eigen::Matrix<float, out, hidden> w2 = Eigen::Matrix<float, out, hidden>::Random();
  Eigen::Matrix<float, out, 1> b2 = Eigen::Matrix<float, out, 1>::Random();
  Eigen::Matrix<float, in, 1> x = Eigen::Matrix<float, in, 1>::Random();
  Eigen::Matrix<float, hidden, 1> h;
  Eigen::Matrix<float, out, 1> y;
};

void BM_mlp_forward_eigen(benchmark::State& state) {
  const auto n = static_cast<Eigen::Index>(state.range(0));
  if (n == 1) {
    auto m = std::make_unique<FixedMLP>();  // 31 KB of fixed-size matrices: on the heap
    for (auto _ : state) {
      m->h.noalias() = (m->w1 * m->x + m->b1).cwiseMax(0.0f);
      m->y.noalias() = m->w2 * m->h + m->b2;
      benchmark::DoNotOptimize(m->y.data());
      benchmark::ClobberMemory();
    }
  } else {
    Eigen::MatrixXf w1 = Eigen::MatrixXf::Random(hidden, in), w2 = Eigen::MatrixXf::Random(out, hidden);
    Eigen::VectorXf b1 = Eigen::VectorXf::Random(hidden), b2 = Eigen::VectorXf::Random(out);
    Eigen::MatrixXf x = Eigen::MatrixXf::Random(in, n), h(hidden, n), y(out, n);  // [features, n]
    for (auto _ : state) {
      h.noalias() = w1 * x;
      h = (h.colwise() + b1).cwiseMax(0.0f);
      y.noalias() = w2 * h;
      y.colwise() += b2;
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
  }
  set_flops(state, mlp_flops_per_sample * double(n));
}
BENCHMARK(BM_mlp_forward_eigen)->Name("BM_mlp_forward/eigen")->Arg(1)->Arg(64)->Arg(256)->MeasureProcessCPUTime();

}  // namespace
