// Dive into Deep Learning, chapter "Deep Learning Computation", in ctnn.
//
// Each section prints what the PyTorch code in the book prints (the PyTorch line is in the
// comment above the C++ that mirrors it). The numbers differ from the book's: ctnn's
// generator is seeded like torch's but draws a different stream.
//
// Sections: Layers and Modules, Parameter Management, Parameter Initialization, Lazy
// Initialization. Custom blocks (class MLP(nn.Module)) are defined in
// include/ctnn/models/d2l.hpp and run in examples/custom_blocks.cpp, file I/O in
// examples/save_load.cpp; tied parameters between Sequential positions are not in
// ctnn yet (a block that calls one member twice shares its parameters).
#include <cmath>
#include <cstddef>
#include <iostream>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;
using namespace ctnn::literals;  // 0_c, 2_c: compile-time layer indices for net[2_c]

namespace {

/// torch.Size([2, 10])
std::string torch_size(const std::vector<std::size_t>& dims) {
  std::string s = "torch.Size([";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "])";
}

/// A float printed as torch prints a 0-dimensional tensor: tensor(0.0123)
Tensor<Shape<>> scalar(float v) { return Tensor<Shape<>>{v}; }

void section(const char* title) { std::cout << "\n==== " << title << " ====\n"; }

}  // namespace

int main() {
  ctnn::manual_seed(42);  // torch.manual_seed(42)

  // ---------------------------------------------------------------------------------------
  section("Layers and Modules");
  {
    // net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    using Net = nn::Sequential<nn::LazyLinear<256>, nn::ReLU, nn::LazyLinear<10>>;
    Model<Net, Shape<20>> net;
    // X = torch.rand(2, 20)
    auto X = ctnn::rand<Shape<20>>(2);
    // net(X).shape
    auto Y = net(X);
    std::cout << torch_size(Y.sizes()) << '\n';
    static_assert(decltype(net)::output_shape == Shape<10>{});  // known before the program runs
  }

  // ---------------------------------------------------------------------------------------
  section("Parameter Management");
  // net = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(1))
  using Net = nn::Sequential<nn::LazyLinear<8>, nn::ReLU, nn::LazyLinear<1>>;
  Model<Net, Shape<4>> net;
  // X = torch.rand(size=(2, 4)); net(X).shape
  auto X = ctnn::rand<Shape<4>>(2);
  std::cout << torch_size(net(X).sizes()) << '\n';

  // net[2].state_dict()
  std::cout << net[2_c].state_dict() << '\n';

  // type(net[2].bias), net[2].bias.data
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(net[2_c].bias)>, nn::Parameter<Shape<1>>>);
  std::cout << "ctnn::nn::Parameter<ctnn::Shape<1>> " << net[2_c].bias << '\n';
  // net[2].weight.grad == None  (ctnn: the gradient exists from the start and is zero)
  std::cout << "grad: " << net.get<2>().weight.grad << '\n';

  // print(*[(name, param.shape) for name, param in net[0].named_parameters()])
  for (const char* sep = ""; auto&& [name, p] : net[0_c].named_parameters()) {
    std::cout << sep << "('" << name << "', " << torch_size(p.shape()) << ')';
    sep = " ";
  }
  std::cout << '\n';
  // [(name, param.shape) for name, param in net.named_parameters()]
  {
    std::cout << '[';
    bool first = true;
    for (auto&& [name, p] : net.named_parameters()) {
      std::cout << (first ? "" : ", ") << "('" << name << "', " << torch_size(p.shape()) << ')';
      first = false;
    }
    std::cout << "]\n";
  }
  // net.state_dict()['2.bias'].data
  std::cout << net.state_dict()["2.bias"] << '\n';

  // Nested blocks (D2L 1st edition):
  //   def block1(): return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())
  //   def block2(): four block1() in an nn.Sequential
  //   rgnet = nn.Sequential(block2(), nn.Linear(4, 1)); rgnet(X); print(rgnet)
  {
    using Block1 = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 4>, nn::ReLU>;
    using Block2 = nn::Sequential<Block1, Block1, Block1, Block1>;
    using RgNet = nn::Sequential<Block2, nn::Linear<4, 1>>;
    Model<RgNet, Shape<4>> rgnet;
    std::cout << rgnet(X) << '\n';
    // The children are named 0..3 where add_module gave 'block 0'..'block 3'.
    std::cout << rgnet << '\n';
    // rgnet[0][1][0].bias.data
    std::cout << rgnet[0_c][1_c][0_c].bias << '\n';
    std::cout << rgnet.state_dict().keys().size() << " tensors, e.g. " << rgnet.state_dict().keys()[2] << '\n';
  }

  // ---------------------------------------------------------------------------------------
  section("Parameter Initialization");
  // def init_normal(module):
  //     if type(module) == nn.Linear:
  //         nn.init.normal_(module.weight, mean=0, std=0.01); nn.init.zeros_(module.bias)
  // net.apply(init_normal); net[0].weight.data[0], net[0].bias.data[0]
  auto init_normal = [](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) {
      nn::init::normal_(layer.weight, 0.0f, 0.01f);
      nn::init::zeros_(layer.bias);
    }
  };
  net.apply(init_normal);
  std::cout << "(" << net[0_c].weight[0] << ", " << scalar(net[0_c].bias[0]) << ")\n";

  // def init_constant(module): nn.init.constant_(module.weight, 1); nn.init.zeros_(module.bias)
  net.apply([](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) {
      nn::init::constant_(layer.weight, 1.0f);
      nn::init::zeros_(layer.bias);
    }
  });
  std::cout << "(" << net[0_c].weight[0] << ", " << scalar(net[0_c].bias[0]) << ")\n";

  // net[0].apply(init_xavier); net[2].apply(init_42)
  net[0_c].apply([](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) nn::init::xavier_uniform_(layer.weight);
  });
  net[2_c].apply([](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) nn::init::constant_(layer.weight, 42.0f);
  });
  std::cout << net[0_c].weight[0] << '\n' << net[2_c].weight << '\n';

  // def my_init(module):
  //     if type(module) == nn.Linear:
  //         print("Init", *[(name, param.shape) for name, param in module.named_parameters()][0])
  //         nn.init.uniform_(module.weight, -10, 10)
  //         module.weight.data *= module.weight.data.abs() >= 5
  // net.apply(my_init); net[0].weight[:2]
  net.apply([](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) {
      const auto params = layer.named_parameters();
      std::cout << "Init " << params.begin()->first << ' ' << torch_size(params.begin()->second.shape()) << '\n';
      nn::init::uniform_(layer.weight, -10.0f, 10.0f);
      for (float& w : layer.weight) w *= std::fabs(w) >= 5.0f ? 1.0f : 0.0f;
    }
  });
  std::cout << Tensor<Shape<2, 4>>(std::span<const float>(net[0_c].weight.data(), 2 * 4)) << '\n';

  // net[0].weight.data[:] += 1; net[0].weight.data[0, 0] = 42; net[0].weight.data[0]
  for (float& w : net[0_c].weight) w += 1.0f;
  net[0_c].weight(0, 0) = 42.0f;
  std::cout << net[0_c].weight[0] << '\n';

  // Tied parameters (shared = nn.LazyLinear(8); nn.Sequential(..., shared, ReLU, shared, ...)):
  // not supported yet — a layer type appears once per position and owns its parameters.

  // ---------------------------------------------------------------------------------------
  section("Lazy Initialization");
  {
    // net = nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10))
    // net[0].weight  -> <UninitializedParameter>; after net(X): torch.Size([256, 20])
    // In ctnn the input shape is part of the model's type, so in_features is known when it compiles.
    using Lazy = nn::Sequential<nn::LazyLinear<256>, nn::ReLU, nn::LazyLinear<10>>;
    Model<Lazy, Shape<20>> lazy;
    using W0 = std::remove_cvref_t<decltype(lazy[0_c].weight)>::shape_type;
    static_assert(W0{} == Shape<256, 20>{});
    std::cout << "net[0].weight: " << W0{} << " (in_features inferred at compile time)\n";
    std::cout << torch_size(lazy(ctnn::rand<Shape<20>>(2)).sizes()) << '\n';
    std::cout << lazy.summary();
  }

  // ---------------------------------------------------------------------------------------
  section("Run-time checks");
  try {
    (void)net(Batch<Shape<4>>(0));  // a batch of 0 samples
  } catch (const ctnn::shape_error& e) {
    std::cout << "shape_error: " << e.what() << '\n';
  }
  return 0;
}
