// libtorch baseline for bench_forward (compiled in with -Dbaselines=enabled): the MLP
// 20 -> 256 -> 10 as torch::nn::Sequential(Linear, ReLU, Linear), inference on one thread.
#include "common.hpp"

#include <torch/torch.h>

using namespace ctnn_bench;

namespace {

void BM_mlp_forward_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  const auto in = static_cast<std::int64_t>(mlp_in), hidden = static_cast<std::int64_t>(mlp_hidden),
             out = static_cast<std::int64_t>(mlp_out);
  torch::nn::Sequential net(torch::nn::Linear(in, hidden), torch::nn::ReLU(), torch::nn::Linear(hidden, out));
  auto x = torch::rand({state.range(0), in});
  for (auto _ : state) {
    auto y = net->forward(x);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  set_flops(state, mlp_flops_per_sample * double(state.range(0)));
}
BENCHMARK(BM_mlp_forward_libtorch)->Name("BM_mlp_forward/libtorch")->Arg(1)->Arg(64)->Arg(256)->MeasureProcessCPUTime();

}  // namespace
