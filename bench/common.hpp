// What every benchmark binary shares: the workloads' sizes, the FLOP/s counter, and main().
//
// Naming: BM_<workload>/<implementation>/<arg>, e.g. BM_mlp_forward/ctnn/1 and
// BM_mlp_forward/libtorch/1, so tools/plot_benchmarks.py can pair ctnn with each baseline.
// Implementations: ctnn, loops (plain loops with compile-time sizes, same flags), eigen,
// libtorch, onednn. Google Benchmark appends "/process_time" or "/real_time" to the name.
//
// Time: single-threaded benchmarks measure the process's CPU time (MeasureProcessCPUTime), so
// a library that quietly used a helper thread would be charged for it; the thread-scaling
// benchmark measures wall time (UseRealTime). FLOP/s counters are rates over the same time.
//
// This header does not include ctnn or any baseline: the libtorch translation units include it
// too, and libtorch's headers alone cost ~24 s and 1.3 GB per translation unit.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace ctnn_bench {

// MLP 20 -> 256 -> 10 (Linear, ReLU, Linear).
inline constexpr std::size_t mlp_in = 20, mlp_hidden = 256, mlp_out = 10;
inline constexpr double mlp_flops_per_sample = 2.0 * (mlp_in * mlp_hidden + mlp_hidden * mlp_out);

// sgemm: y[M, N] = x[M, K] w[N, K]^T, M = N = K = 256.
inline constexpr std::size_t gemm_n = 256;
inline constexpr double gemm_flops = 2.0 * gemm_n * gemm_n * gemm_n;

// Conv2d 64 -> 64, 3x3, padding 1, on [1, 64, 56, 56] (NCHW in and out), followed by ReLU.
inline constexpr std::size_t conv_c = 64, conv_hw = 56, conv_k = 3;
inline constexpr double conv_flops = 2.0 * conv_c * conv_c * conv_k * conv_k * conv_hw * conv_hw;

// D2L's LeNet (bench_lenet.cpp) at batch 256; SGD's learning rate.
inline constexpr std::size_t lenet_batch = 256;
inline constexpr float lenet_lr = 0.01f;

// D2L's ResNet-18 (8.6) and BN-LeNet (8.5) (bench_resnet.cpp), with the book's learning rates:
// ResNet-18 at batch 64 on Fashion-MNIST's 28 x 28 and on the 96 x 96 the book resizes it to,
// SGD lr 0.05; BN-LeNet at batch 256 on 28 x 28, lr 1.0.
inline constexpr std::size_t resnet_batch = 64;
inline constexpr float resnet_lr = 0.05f;
inline constexpr std::size_t bn_lenet_batch = 256;
inline constexpr float bn_lenet_lr = 1.0f;

/// Reports `flops_per_iteration` as a FLOP/s rate (over the benchmark's own time).
inline void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_iteration * double(state.iterations()), benchmark::Counter::kIsRate);
}

/// The baselines run on one thread. OpenBLAS (under libtorch) and OpenMP (under oneDNN) read
/// their thread counts from the environment when the shared libraries load, i.e. before main,
/// so setting the variables inside main is too late: when they are not already 1, main sets
/// them and re-executes the program (argv unchanged). ctnn's own thread count is set per
/// benchmark with ctnn::set_num_threads.
inline void baselines_on_one_thread(char** argv) {
  const char* vars[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"};
  bool set = true;
  for (const char* v : vars) {
    const char* value = std::getenv(v);
    set = set && value && std::strcmp(value, "1") == 0;
  }
  if (set) return;
  for (const char* v : vars) setenv(v, "1", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace ctnn_bench

/// main() of every bench binary: BENCHMARK_MAIN with the baselines on one thread.
#define CTNN_BENCH_MAIN()                                             \
  int main(int argc, char** argv) {                                   \
    ctnn_bench::baselines_on_one_thread(argv);                        \
    benchmark::Initialize(&argc, argv);                               \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1; \
    benchmark::RunSpecifiedBenchmarks();                              \
    benchmark::Shutdown();                                            \
    return 0;                                                         \
  }
