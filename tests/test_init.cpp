// nn::init against PyTorch's formulas (bounds and stds from tools/gen_reference.py's init_stats.txt).
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>

#include "helpers.hpp"

namespace nn = ctnn::nn;
namespace init = ctnn::nn::init;
using ctnn::Model, ctnn::Shape, ctnn::Tensor;

namespace {

struct Stats {
  float min, max, mean, std;
};
template <class T>
Stats stats(const T& t) {
  Stats s{INFINITY, -INFINITY, 0, 0};
  double sum = 0, sq = 0;
  const std::size_t n = t.numel();
  for (std::size_t i = 0; i < n; ++i) {
    const float v = t.data()[i];
    s.min = std::min(s.min, v), s.max = std::max(s.max, v);
    sum += v, sq += double(v) * v;
  }
  s.mean = float(sum / n);
  s.std = float(std::sqrt(sq / n - (sum / n) * (sum / n)));
  return s;
}

/// Values of U(-bound, bound) on a large tensor: inside the bound, reaching near it, std bound/sqrt(3).
template <class T>
void check_uniform(const T& t, float bound) {
  const Stats s = stats(t);
  CHECK(s.min >= -bound);
  CHECK(s.max <= bound);
  CHECK(s.max > 0.98f * bound);
  CHECK(s.min < -0.98f * bound);
  CHECK(s.std == doctest::Approx(bound / std::sqrt(3.0f)).epsilon(0.04));
}
template <class T>
void check_normal(const T& t, float std) {
  const Stats s = stats(t);
  CHECK(std::fabs(s.mean) < 0.05f * std);
  CHECK(s.std == doctest::Approx(std).epsilon(0.04));
}

}  // namespace

TEST_CASE("calculate_fans and calculate_gain follow PyTorch") {
  auto ref = ctnn_test::load_reference(ctnn_test::reference_path("init_stats.txt"));
  Tensor<Shape<256, 20>> w;
  Tensor<Shape<16, 6, 5, 5>> k;
  CHECK(init::calculate_fans(w).fan_in == 20);
  CHECK(init::calculate_fans(w).fan_out == 256);
  CHECK(init::calculate_fans(k).fan_in == 150);
  CHECK(init::calculate_fans(k).fan_out == 400);
  using NL = init::Nonlinearity;
  const float gains[] = {init::calculate_gain(NL::linear),     init::calculate_gain(NL::sigmoid),
                         init::calculate_gain(NL::tanh),       init::calculate_gain(NL::relu),
                         init::calculate_gain(NL::leaky_relu), init::calculate_gain(NL::leaky_relu, 0.2f),
                         init::calculate_gain(NL::selu)};
  ctnn_test::check_close(gains, ref.at("gain_values").values, 1e-6f, 0, "gains");
}

TEST_CASE("xavier and kaiming initializers have PyTorch's bounds and standard deviations") {
  auto ref = ctnn_test::load_reference(ctnn_test::reference_path("init_stats.txt"));
  ctnn::Generator gen(7);
  Tensor<Shape<256, 20>> w;
  Tensor<Shape<16, 6, 5, 5>> k;
  auto at = [&](const char* name, int i) { return ref.at(name).values.at(i); };

  init::xavier_uniform_(w, 1.0f, gen);
  check_uniform(w, at("xavier_uniform_bound", 0));
  init::xavier_uniform_(k, 1.0f, gen);
  check_uniform(k, at("xavier_uniform_bound", 1));
  init::xavier_normal_(w, 1.0f, gen);
  check_normal(w, at("xavier_normal_std", 0));
  init::kaiming_uniform_(w, 0.0f, init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  check_uniform(w, at("kaiming_uniform_bound", 0));
  init::kaiming_uniform_(k, 0.0f, init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  check_uniform(k, at("kaiming_uniform_bound", 1));
  init::kaiming_normal_(k, 0.0f, init::FanMode::fan_in, init::Nonlinearity::relu, gen);
  check_normal(k, at("kaiming_normal_std", 1));
  init::kaiming_normal_(w, 0.0f, init::FanMode::fan_out, init::Nonlinearity::relu, gen);
  check_normal(w, at("kaiming_normal_std_fan_out", 0));
  init::normal_(w, 3.0f, 0.5f, gen);
  CHECK(stats(w).mean == doctest::Approx(3.0f).epsilon(0.01));
  init::uniform_(w, -2.0f, -1.0f, gen);
  CHECK(stats(w).min >= -2.0f);
  CHECK(stats(w).max <= -1.0f);
  init::constant_(w, 42.0f);
  CHECK(stats(w).min == 42.0f);
  CHECK(stats(w).max == 42.0f);
  init::ones_(k);
  CHECK(stats(k).mean == 1.0f);
  init::zeros_(k);
  CHECK(stats(k).max == 0.0f);
}

TEST_CASE("Linear's default init is PyTorch's: weight and bias in U(-1/sqrt(in), 1/sqrt(in))") {
  auto ref = ctnn_test::load_reference(ctnn_test::reference_path("init_stats.txt"));
  Model<nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 1024>>, Shape<20>> net(3);
  const float bound0 = ref.at("default_linear_bound").values.at(0);  // fan_in 20
  check_uniform(net.get<0>().weight, bound0);
  const Stats b = stats(net.get<0>().bias);
  CHECK(b.min >= -bound0);
  CHECK(b.max <= bound0);
  check_uniform(net.get<2>().weight, 1.0f / 16.0f);  // fan_in 256
}

TEST_CASE("models built from the same seed are identical; different seeds differ") {
  using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 2>>;
  Model<Net, Shape<4>> a(11), b(11), c(12);
  CHECK(a.get<0>().weight.to_vector() == b.get<0>().weight.to_vector());
  CHECK(a.get<2>().bias.to_vector() == b.get<2>().bias.to_vector());
  CHECK(a.get<0>().weight.to_vector() != c.get<0>().weight.to_vector());
  ctnn::Generator g1(5), g2(5);
  Model<Net, Shape<4>> d(g1), e(g2);
  CHECK(d.get<2>().weight.to_vector() == e.get<2>().weight.to_vector());
}

TEST_CASE("initializers reach parameters through state_dict views; rank < 2 has no fans") {
  Model<nn::Sequential<nn::Linear<3, 2>>, Shape<3>> net;
  auto sd = net.state_dict();
  init::constant_(sd["0.weight"], 0.5f);
  CHECK(net.get<0>().weight(1, 2) == 0.5f);
  CHECK_THROWS_AS(init::xavier_uniform_(sd["0.bias"]), std::invalid_argument);
}
