// Linear, activations, Flatten and Sequential forward: against PyTorch-generated vectors
// (tools/gen_reference.py) and against scalar reference loops.
#include <doctest/doctest.h>

#include <ctnn/ctnn.hpp>
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

// ---- The GEMM kernel against scalar loops, on sizes that hit every tile and tail ---------

namespace {

float apply_scalar(int act, float v) {
  switch (act) {
    case 1: return v > 0 ? v : 0;
    case 2: return 1.0f / (1.0f + std::exp(-v));
    case 3: return std::tanh(v);
    default: return v;
  }
}

template <std::size_t K, std::size_t O, class Op>
void check_linear_kernel(int act, std::size_t M, bool bias) {
  ctnn::Generator gen(K * 1000 + O * 10 + M);
  std::vector<float> x(M * K), w(O * K), b(O), y(M * O, -7.0f);
  for (auto& v : x) v = gen.normal();
  for (auto& v : w) v = gen.normal();
  for (auto& v : b) v = gen.normal();
  std::vector<float> scratch(ctnn::kernels::linear_scratch_floats<K, O>);
  ctnn::kernels::linear_forward<K, O, Op>(x.data(), w.data(), bias ? b.data() : nullptr, y.data(), M, scratch.data());
  std::vector<float> expected(M * O);
  for (std::size_t m = 0; m < M; ++m)
    for (std::size_t o = 0; o < O; ++o) {
      double s = bias ? b[o] : 0.0;
      for (std::size_t k = 0; k < K; ++k) s += double(x[m * K + k]) * w[o * K + k];
      expected[m * O + o] = apply_scalar(act, float(s));
    }
  check_close(y, expected, 1e-5f, 1e-5f,
              "K=" + std::to_string(K) + " O=" + std::to_string(O) + " M=" + std::to_string(M));
}

template <std::size_t K, std::size_t O>
void check_linear_sizes() {
  for (std::size_t M : {1u, 2u, 3u, 4u, 5u, 9u, 17u}) {
    check_linear_kernel<K, O, ctnn::kernels::identity_op>(0, M, true);
    check_linear_kernel<K, O, ctnn::kernels::relu_op>(1, M, M % 2 == 0);
    check_linear_kernel<K, O, ctnn::kernels::sigmoid_op>(2, M, true);
    check_linear_kernel<K, O, ctnn::kernels::tanh_op>(3, M, false);
  }
}

}  // namespace

TEST_CASE("linear_forward with fused bias and activation matches scalar loops on every tail") {
  check_linear_sizes<1, 1>();
  check_linear_sizes<3, 17>();
  check_linear_sizes<20, 256>();
  check_linear_sizes<33, 31>();
  check_linear_sizes<7, 40>();
  check_linear_sizes<64, 8>();
}

TEST_CASE("Sequential fuses an activation into the Linear before it and gives it no buffer") {
  using B = nn::bind_t<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 3>, nn::Flatten, nn::Sigmoid>,
                       Shape<4>>;
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
