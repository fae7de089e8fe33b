// oneDNN baselines for bench_kernels (compiled in with -Dbaselines=enabled), on one thread
// (OMP_NUM_THREADS=1, set by main before the library initializes: common.hpp).
//   BM_sgemm/onednn          dnnl_sgemm, row-major, y = x w^T
//   BM_conv_relu/onednn      convolution in the layout oneDNN picks (blocked, format_tag::any)
//                            with a ReLU post-op; reorders to and from NCHW are not timed
//   BM_conv_relu/onednn_nchw the same primitive with the NCHW -> blocked -> NCHW reorders timed
// The weights are reordered once, outside the timing, in both (as a deployed model would).
#include "common.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

using namespace ctnn_bench;

namespace {

std::vector<float> random_floats(std::size_t n) {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(gen);
  return v;
}

void BM_sgemm_onednn(benchmark::State& state) {
  constexpr auto n = static_cast<dnnl_dim_t>(gemm_n);
  auto x = random_floats(gemm_n * gemm_n), w = random_floats(gemm_n * gemm_n);
  std::vector<float> y(gemm_n * gemm_n);
  for (auto _ : state) {
    dnnl_sgemm('N', 'T', n, n, n, 1.0f, x.data(), n, w.data(), n, 0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, gemm_flops);
}
BENCHMARK(BM_sgemm_onednn)->Name("BM_sgemm/onednn")->Arg(gemm_n)->MeasureProcessCPUTime();

void conv_onednn(benchmark::State& state, bool time_reorders) {
  using dnnl::memory;
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  const auto c = static_cast<memory::dim>(conv_c), hw = static_cast<memory::dim>(conv_hw),
             k = static_cast<memory::dim>(conv_k);
  const memory::dims x_dims{1, c, hw, hw}, w_dims{c, c, k, k}, b_dims{c}, y_dims{1, c, hw, hw};

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                             memory::desc(x_dims, f32, tag::any), memory::desc(w_dims, f32, tag::any),
                                             memory::desc(b_dims, f32, tag::x), memory::desc(y_dims, f32, tag::any),
                                             /*strides=*/{1, 1}, /*padding_l=*/{1, 1}, /*padding_r=*/{1, 1});
  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  const dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);

  // User tensors in NCHW / OIHW, and the primitive's own layouts.
  auto x_host = random_floats(conv_c * conv_hw * conv_hw), w_host = random_floats(conv_c * conv_c * conv_k * conv_k),
       b_host = random_floats(conv_c);
  memory x_user({x_dims, f32, tag::nchw}, eng, x_host.data()), w_user({w_dims, f32, tag::oihw}, eng, w_host.data());
  memory b_mem({b_dims, f32, tag::x}, eng, b_host.data()), y_user({y_dims, f32, tag::nchw}, eng);
  memory x_mem(pd.src_desc(), eng), w_mem(pd.weights_desc(), eng), y_mem(pd.dst_desc(), eng);
  dnnl::reorder(w_user, w_mem).execute(s, w_user, w_mem);
  dnnl::reorder x_in(x_user, x_mem), y_out(y_mem, y_user);
  x_in.execute(s, x_user, x_mem);
  s.wait();

  dnnl::convolution_forward conv(pd);
  for (auto _ : state) {
    if (time_reorders) x_in.execute(s, x_user, x_mem);
    conv.execute(s, {{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_BIAS, b_mem}, {DNNL_ARG_DST, y_mem}});
    if (time_reorders) y_out.execute(s, y_mem, y_user);
    s.wait();
    benchmark::ClobberMemory();
  }
  set_flops(state, conv_flops);
}
void BM_conv_onednn(benchmark::State& state) { conv_onednn(state, false); }
void BM_conv_onednn_nchw(benchmark::State& state) { conv_onednn(state, true); }
BENCHMARK(BM_conv_onednn)->Name("BM_conv_relu/onednn")->Arg(1)->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_conv_onednn_nchw)
    ->Name("BM_conv_relu/onednn_nchw")
    ->Arg(1)
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
