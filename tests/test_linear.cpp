// Linear, activations, Flatten and Sequential forward: against PyTorch-generated vectors
// (tools/gen_reference.py) and against scalar reference loops.
#include <doctest/doctest.h>

#include <ctnn/ctnn.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "helpers.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;
using ctnn_test::check_close, ctnn_test::load_parameters, ctnn_test::load_reference, ctnn_test::reference_path;

namespace {

/// Runs `net` on reference tensor `in` and compares with reference tensor `out`.
template <class ModelT>
void check_against(ModelT& net, const ctnn_test::RefTensor& in, const ctnn_test::RefTensor& out, const char* what) {
  using In = typename ModelT::input_shape_type;
  const std::size_t n = in.shape.at(0);
  Batch<In> X(n, in.values);
  auto Y = net(X);
  check_close(std::span<const float>(Y.data(), Y.numel()), out.values, 1e-5f, 1e-6f, what);
}

}  // namespace

TEST_CASE("Sequential(Linear(4, 8), ReLU, Linear(8, 1)) matches PyTorch for batches of 2 and 5") {
  auto ref = load_reference(reference_path("linear_relu_linear.txt"));
  Model<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::LazyLinear<1>>, Shape<4>> net;
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "batch 2");
  check_against(net, ref.at("input_b5"), ref.at("output_b5"), "batch 5");
}

TEST_CASE("MLP 20-256-10 with ReLU matches PyTorch for batches of 2 and 64") {
  auto ref = load_reference(reference_path("mlp_20_256_10.txt"));
  Model<nn::Sequential<nn::LazyLinear<256>, nn::ReLU, nn::LazyLinear<10>>, Shape<20>> net;
  static_assert(decltype(net)::parameter_count == 20 * 256 + 256 + 256 * 10 + 10);
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "batch 2");
  check_against(net, ref.at("input_b64"), ref.at("output_b64"), "batch 64");
}

TEST_CASE("nested Sequential matches PyTorch and names parameters 0.0.weight ... 1.bias") {
  auto ref = load_reference(reference_path("nested_sequential.txt"));
  using Net = nn::Sequential<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 4>, nn::ReLU>, nn::Linear<4, 1>>;
  Model<Net, Shape<4>> net;
  CHECK(net.state_dict().keys() ==
        std::vector<std::string>{"0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias", "1.weight", "1.bias"});
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "nested");
}

TEST_CASE("Sigmoid, Tanh, Identity and Flatten inside a nested Sequential match PyTorch") {
  auto ref = load_reference(reference_path("nested_sigmoid_tanh.txt"));
  using Net = nn::Sequential<nn::Linear<6, 5>, nn::Sigmoid, nn::Sequential<nn::Linear<5, 7>, nn::Tanh, nn::Identity>,
                             nn::Flatten, nn::LazyLinear<3>>;
  Model<Net, Shape<6>> net;
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "sigmoid/tanh");
}

TEST_CASE("Linear acts on the last dimension of a rank-3 sample, as in PyTorch") {
  auto ref = load_reference(reference_path("linear_rank3.txt"));
  Model<nn::Sequential<nn::Linear<5, 3>, nn::ReLU>, Shape<4, 5>> net;
  static_assert(decltype(net)::output_shape == Shape<4, 3>{});
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "rank 3");
}

TEST_CASE("Flatten then LazyLinear infers 12 input features and matches PyTorch") {
  auto ref = load_reference(reference_path("flatten_linear.txt"));
  Model<nn::Sequential<nn::Flatten, nn::LazyLinear<4>, nn::Sigmoid>, Shape<2, 2, 3>> net;
  static_assert(std::remove_cvref_t<decltype(net.get<1>())>::in_features == 12);
  load_parameters(net, ref);
  check_against(net, ref.at("input"), ref.at("output"), "flatten");
}

// ---- The GEMM kernels against scalar loops, on sizes that hit every tile and tail ---------
//
// linear_forward picks the dot path (w read as [O, K]) or the packed path (w^T in panels) by M;
// both are also run directly at every size, so each path sees every tail, and so is
// linear_forward_prepacked (ctnn::freeze's path: panels packed once, the packed path at every M,
// one row at a time with all outputs in registers at M = 1). Sizes: K and O below,
// at and above the vector width, not multiples of it, and larger than one K block (K > 128).

namespace {

namespace kernels = ctnn::kernels;

float apply_scalar(int act, float v) {
  switch (act) {
    case 1: return v > 0 ? v : 0;
    case 2: return 1.0f / (1.0f + std::exp(-v));
    case 3: return std::tanh(v);
    default: return v;
  }
}

/// |actual - expected| <= tol * (|expected| + magnitude + 1): magnitude is the sum of |terms|
/// that made the element, so long sums (K = 1000) get the rounding error they can have, while
/// a wrong or missing term (O(1) off) still fails.
void check_sums(const std::vector<float>& actual, const std::vector<double>& expected,
                const std::vector<double>& magnitude, float tol, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i)
    if (!(std::fabs(actual[i] - expected[i]) <= tol * (std::fabs(expected[i]) + magnitude[i] + 1.0))) {
      if (bad++ == 0) first = i;
    }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << actual.size() << " differ; first at " << first << ": "
                               << (bad ? actual[first] : 0.f) << " vs " << (bad ? expected[first] : 0.0));
}

enum class Path { dispatch, dot, packed, prepacked };

template <std::size_t K, std::size_t O, class Op>
void check_linear_kernel(int act, std::size_t M, bool bias, Path path) {
  ctnn::Generator gen(K * 1000 + O * 10 + M);
  std::vector<float> x(M * K), w(O * K), b(O), y(M * O + 1, -7.0f);  // +1: a guard after y
  for (auto& v : x) v = gen.normal();
  for (auto& v : w) v = gen.normal();
  for (auto& v : b) v = gen.normal();
  // Scratch one float off a 64-byte boundary: the kernel aligns its panels itself.
  std::vector<float> scratch_buf(kernels::linear_scratch_floats<K, O> + 1, 0.0f);
  float* scratch = scratch_buf.data() + 1;
  const float* bp = bias ? b.data() : nullptr;
  if (path == Path::dispatch) kernels::linear_forward<K, O, Op>(x.data(), w.data(), bp, y.data(), M, scratch);
  if (path == Path::dot) kernels::detail::linear_forward_dot<K, O, Op>(x.data(), w.data(), bp, y.data(), M);
  if constexpr (!kernels::detail::dot_always<K, O>)
    if (path == Path::packed)
      kernels::detail::linear_forward_packed<K, O, Op>(x.data(), w.data(), bp, y.data(), M, scratch);
  if constexpr (!kernels::detail::dot_always<K, O>)
    if (path == Path::prepacked) {
      auto packed = ctnn::detail::allocate_floats(kernels::prepacked_floats<K, O>);
      kernels::prepack_linear<K, O>(w.data(), bp, packed.get());
      // Only the packed copy is read: w and b passed as zeros would show through otherwise.
      const std::vector<float> zeros(O * K);
      kernels::linear_forward_prepacked<K, O, Op>(x.data(), zeros.data(), bias ? zeros.data() : nullptr, packed.get(),
                                                  y.data(), M);
    }
  CHECK_MESSAGE(y[M * O] == -7.0f, "wrote past y");
  y.pop_back();
  std::vector<double> expected(M * O), magnitude(M * O);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t o = 0; o < O; ++o) {
      double s = bias ? b[o] : 0.0, mag = bias ? std::fabs(b[o]) : 0.0;
      for (std::size_t k = 0; k < K; ++k) {
        s += double(x[m * K + k]) * w[o * K + k];
        mag += std::fabs(double(x[m * K + k]) * w[o * K + k]);
      }
      expected[m * O + o] = apply_scalar(act, float(s));
      magnitude[m * O + o] = mag;
    }
  const char* names[] = {"dispatch", "dot", "packed", "prepacked"};
  check_sums(y, expected, magnitude, 2e-6f,
             std::string(names[int(path)]) + " K=" + std::to_string(K) + " O=" + std::to_string(O) +
                 " M=" + std::to_string(M) + " act=" + std::to_string(act));
}

template <std::size_t K, std::size_t O>
void check_linear_sizes(std::initializer_list<std::size_t> Ms) {
  for (Path path : {Path::dispatch, Path::dot, Path::packed, Path::prepacked}) {
    if ((path == Path::packed || path == Path::prepacked) && kernels::detail::dot_always<K, O>) continue;
    for (std::size_t M : Ms) {
      check_linear_kernel<K, O, kernels::identity_op>(0, M, true, path);
      check_linear_kernel<K, O, kernels::relu_op>(1, M, M % 2 == 0, path);
      check_linear_kernel<K, O, kernels::sigmoid_op>(2, M, true, path);
      check_linear_kernel<K, O, kernels::tanh_op>(3, M, false, path);
    }
  }
}

/// Every row count 1..17 (all leftover-row tiles of the packed path), and 64.
template <std::size_t K, std::size_t O>
void check_linear_all_rows() {
  check_linear_sizes<K, O>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 64});
}

/// dx = dz w, dw += dz^T x, db += colsum dz against scalar loops (dw, db start nonzero).
template <std::size_t K, std::size_t O>
void check_linear_backward(std::size_t M) {
  ctnn::Generator gen(K * 1000 + O * 10 + M + 1);
  std::vector<float> x(M * K), w(O * K), dz(M * O), dw(O * K), db(O), dx(M * K + 1, -7.0f);
  for (auto* v : {&x, &w, &dz, &dw, &db})
    for (auto& e : *v) e = gen.normal();
  std::vector<double> edx(M * K), mdx(M * K), edw(O * K), mdw(O * K), edb(O), mdb(O);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t o = 0; o < O; ++o) {
        edx[m * K + k] += double(dz[m * O + o]) * w[o * K + k];
        mdx[m * K + k] += std::fabs(double(dz[m * O + o]) * w[o * K + k]);
      }
  for (std::size_t o = 0; o < O; ++o) {
    edb[o] = db[o];
    mdb[o] = std::fabs(db[o]);
    for (std::size_t m = 0; m < M; ++m) {
      edb[o] += dz[m * O + o];
      mdb[o] += std::fabs(dz[m * O + o]);
    }
    for (std::size_t k = 0; k < K; ++k) {
      edw[o * K + k] = dw[o * K + k];
      mdw[o * K + k] = std::fabs(dw[o * K + k]);
      for (std::size_t m = 0; m < M; ++m) {
        edw[o * K + k] += double(dz[m * O + o]) * x[m * K + k];
        mdw[o * K + k] += std::fabs(double(dz[m * O + o]) * x[m * K + k]);
      }
    }
  }
  kernels::linear_backward_input<K, O>(dz.data(), w.data(), dx.data(), M);
  kernels::linear_backward_params<K, O>(dz.data(), x.data(), dw.data(), db.data(), M);
  CHECK_MESSAGE(dx[M * K] == -7.0f, "wrote past dx");
  dx.pop_back();
  const std::string what = " K=" + std::to_string(K) + " O=" + std::to_string(O) + " M=" + std::to_string(M);
  check_sums(dx, edx, mdx, 2e-6f, "dx" + what);
  check_sums(dw, edw, mdw, 2e-6f, "dw" + what);
  check_sums(db, edb, mdb, 2e-6f, "db" + what);
}

template <std::size_t K, std::size_t O>
void check_linear_backward_rows() {
  for (std::size_t M : {1, 2, 3, 5, 7, 8, 9, 16, 17, 64}) check_linear_backward<K, O>(M);
}

}  // namespace

TEST_CASE("linear_forward with fused bias and activation matches scalar loops on every tail") {
  check_linear_all_rows<1, 1>();
  check_linear_all_rows<3, 17>();
  check_linear_all_rows<20, 256>();
  check_linear_all_rows<256, 10>();
  check_linear_all_rows<33, 31>();
  check_linear_all_rows<7, 40>();
  check_linear_all_rows<64, 8>();
  check_linear_all_rows<16, 48>();
  check_linear_all_rows<17, 49>();
  check_linear_all_rows<1, 100>();
  check_linear_all_rows<100, 1>();
  check_linear_all_rows<47, 97>();
}

TEST_CASE("linear_forward over several K blocks (K = 129, 300, 600, 1000) and M = 256") {
  check_linear_sizes<129, 33>({1, 3, 8, 17});
  check_linear_sizes<300, 70>({1, 2, 9, 64});
  // 6 x 4 register tiles (O = 64: one panel of 4 vectors; O = 100: 4 + 3 vectors, 4 valid in the
  // last), with leftover rows and K blocks of 256 + 44 and 256 + 256 + 88.
  check_linear_sizes<300, 64>({1, 5, 7, 13, 64});
  check_linear_sizes<600, 100>({1, 6, 11, 19});
  check_linear_sizes<1000, 20>({1, 5, 16});
  check_linear_sizes<256, 256>({1, 256});
  check_linear_sizes<20, 600>({1, 2, 7});  // M = 1 on the panels: 38 output vectors, in groups of 24
}

TEST_CASE("linear backward kernels (dx, dw, db) match scalar loops on every tail") {
  check_linear_backward_rows<1, 1>();
  check_linear_backward_rows<3, 17>();
  check_linear_backward_rows<20, 256>();
  check_linear_backward_rows<256, 10>();
  check_linear_backward_rows<33, 31>();
  check_linear_backward_rows<16, 8>();
  check_linear_backward_rows<47, 9>();
  check_linear_backward_rows<48, 16>();
  check_linear_backward_rows<49, 100>();
  check_linear_backward_rows<300, 7>();
  check_linear_backward_rows<1000, 3>();
}

TEST_CASE("Sequential fuses an activation into the Linear before it and gives it no buffer") {
  using B =
      nn::bind_t<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 3>, nn::Flatten, nn::Sigmoid>, Shape<4>>;
  static_assert(B::fused == std::array<bool, 5>{false, true, false, false, false});
  // Linear 8 floats, ReLU fused (0), Linear 3, Flatten is a view (0), Sigmoid 3.
  static_assert(B::offsets == std::array<std::size_t, 6>{0, 8, 8, 11, 11, 14});
  static_assert(B::activation_floats == 14);
  CHECK(B::fused[1]);
}

TEST_CASE("eltwise activations match scalar formulas, including large magnitudes") {
  std::vector<float> x;
  for (int i = -40; i <= 40; ++i) x.push_back(float(i) * 0.73f);
  x.push_back(-1e4f);
  x.push_back(1e4f);
  std::vector<float> y(x.size()), e(x.size());
  for (int act = 1; act <= 3; ++act) {
    if (act == 1) ctnn::kernels::eltwise_forward<ctnn::kernels::relu_op>(x.data(), y.data(), x.size());
    if (act == 2) ctnn::kernels::eltwise_forward<ctnn::kernels::sigmoid_op>(x.data(), y.data(), x.size());
    if (act == 3) ctnn::kernels::eltwise_forward<ctnn::kernels::tanh_op>(x.data(), y.data(), x.size());
    for (std::size_t i = 0; i < x.size(); ++i) e[i] = apply_scalar(act, x[i]);
    check_close(y, e, 2e-6f, 1e-7f, "activation " + std::to_string(act));
  }
}

TEST_CASE("the vector exp and sigmoid match std::exp in double within a few ulp, and clamp instead of overflowing") {
  namespace k = ctnn::kernels;
  alignas(64) float in[k::simd_width], e[k::simd_width], s[k::simd_width];
  double worst_exp = 0, worst_sigmoid = 0;
  for (int i0 = -9000; i0 <= 9000; i0 += static_cast<int>(k::simd_width)) {  // x in [-90, 90], step 0.01
    for (std::size_t l = 0; l < k::simd_width; ++l) in[l] = 0.01f * static_cast<float>(i0 + static_cast<int>(l));
    k::exp_approx(k::vfloat::load_aligned(in)).store_aligned(e);
    k::sigmoid_op::forward(k::vfloat::load_aligned(in)).store_aligned(s);
    for (std::size_t l = 0; l < k::simd_width; ++l) {
      const double x = in[l], ex = std::exp(x), sx = 1.0 / (1.0 + std::exp(-x));
      if (x > -87.33 && x < 88.72) worst_exp = std::max(worst_exp, std::fabs(e[l] - ex) / ex);
      else CHECK(std::isfinite(e[l]));  // clamped: the exp of the nearest end of the range
      if (sx > 1e-30) worst_sigmoid = std::max(worst_sigmoid, std::fabs(s[l] - sx) / sx);
      CHECK((s[l] >= 0.0f && s[l] <= 1.0f));
    }
  }
  CHECK(worst_exp < 1.2e-7);      // 1 ulp of a float (2^-23)
  CHECK(worst_sigmoid < 3e-7);
  for (std::size_t l = 0; l < k::simd_width; ++l) in[l] = std::numeric_limits<float>::quiet_NaN();
  k::exp_approx(k::vfloat::load_aligned(in)).store_aligned(e);
  CHECK(std::isnan(e[0]));
}
