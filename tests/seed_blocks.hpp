// The custom blocks of D2L's "Layers and Modules" / "Custom Layers" sections, written with
// nn::Block (the PyTorch code is in the comment above each). Shared by tests/test_blocks.cpp.
#ifndef CTNN_TEST_SEED_BLOCKS_HPP
#define CTNN_TEST_SEED_BLOCKS_HPP

#include <ctnn/ctnn.hpp>
#include <string>

namespace seed {

namespace nn = ctnn::nn;
using ctnn::Shape;

// class MLP(nn.Module):
//     def __init__(self):
//         super().__init__()
//         self.hidden = nn.LazyLinear(256)
//         self.out = nn.LazyLinear(10)
//     def forward(self, X):
//         return self.out(F.relu(self.hidden(X)))
template <class In>
struct MLP : nn::Block<MLP<In>> {
  nn::Layer<nn::LazyLinear<256>, In> hidden;
  nn::Layer<nn::LazyLinear<10>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, out)
  auto forward(auto X) { return out(relu(hidden(X))); }
  static std::string type_name() { return "MLP"; }
};

// class MySequential(nn.Module):
//     def __init__(self, *args):
//         for idx, module in enumerate(args): self.add_module(str(idx), module)
//     def forward(self, X):
//         for module in self.children(): X = module(X)
//         return X
// (three children; their names are "0", "1", "2" as add_module(str(idx)) gives)
template <class In, class A, class B, class C>
struct MySequential : nn::Block<MySequential<In, A, B, C>> {
  nn::Layer<A, In> m0;
  nn::Layer<B, nn::output_t<decltype(m0)>> m1;
  nn::Layer<C, nn::output_t<decltype(m1)>> m2;
  CTNN_MEMBERS_AS("0, 1, 2", m0, m1, m2)
  auto forward(auto X) { return m2(m1(m0(X))); }
  static std::string type_name() { return "MySequential"; }
};

// class FixedHiddenMLP(nn.Module):
//     def __init__(self):
//         super().__init__()
//         self.rand_weight = torch.rand((20, 20))   # a constant: no gradient, not a parameter
//         self.linear = nn.LazyLinear(20)
//     def forward(self, X):
//         X = self.linear(X)
//         X = F.relu(X @ self.rand_weight + 1)
//         X = self.linear(X)                        # the same layer again: shared parameters
//         while X.abs().sum() > 1:                  # a data-dependent loop
//             X /= 2
//         return X.sum()
// X.sum() is over the whole batch, as in PyTorch: the block's output is one value for any N
// (Shape<>, batched_output = false), and the while condition sees the whole batch too. The
// halvings are a run-time scale: a constant for the derivative, as PyTorch's in-place X /= 2.
template <class In>
struct FixedHiddenMLP : nn::Block<FixedHiddenMLP<In>> {
  ctnn::Tensor<Shape<20, 20>> rand_weight;
  nn::Layer<nn::LazyLinear<20>, In> linear;
  CTNN_MEMBERS(rand_weight, linear)
  void reset_parameters(ctnn::Generator& gen) { ctnn::rand_(rand_weight, gen); }
  auto forward(auto X) {
    auto H = linear(relu(mm(linear(X), rand_weight) + 1));
    float scale = 1.0f;
    while ((H * scale).abs().sum().item() > 1.0f) scale /= 2.0f;
    return (H * scale).sum();
  }
  static std::string type_name() { return "FixedHiddenMLP"; }
};

// The per-sample variant: the same loop over the whole batch, then one sum per sample (sum<1>),
// whose total is PyTorch's value. Its samples are coupled through the loop's item(), which the
// result's type cannot show: the block says so.
template <class In>
struct FixedHiddenMLPPerSample : nn::Block<FixedHiddenMLPPerSample<In>> {
  ctnn::Tensor<Shape<20, 20>> rand_weight;
  nn::Layer<nn::LazyLinear<20>, In> linear;
  CTNN_MEMBERS(rand_weight, linear)
  static constexpr bool batch_coupled = true;
  void reset_parameters(ctnn::Generator& gen) { ctnn::rand_(rand_weight, gen); }
  auto forward(auto X) {
    auto H = linear(relu(mm(linear(X), rand_weight) + 1));
    float scale = 1.0f;
    while ((H * scale).abs().sum().item() > 1.0f) scale /= 2.0f;
    return sum<1>(H * scale);
  }
};

// class CenteredLayer(nn.Module):
//     def forward(self, X):
//         return X - X.mean()
template <class In>
struct CenteredLayer : nn::Block<CenteredLayer<In>> {
  auto forward(auto X) { return X - X.mean(); }
  static std::string type_name() { return "CenteredLayer"; }
};

// class MyLinear(nn.Module):
//     def __init__(self, in_units, units):
//         super().__init__()
//         self.weight = nn.Parameter(torch.randn(in_units, units))
//         self.bias = nn.Parameter(torch.randn(units,))
//     def forward(self, X):
//         linear = torch.matmul(X, self.weight.data) + self.bias.data
//         return F.relu(linear)
// MyLinear<64, 8> is itself a spec (a type with `bind`), so Sequential<MyLinear<64, 8>, ...> reads
// like nn.Sequential(MyLinear(64, 8), ...).
template <std::size_t InUnits, std::size_t Units>
struct MyLinear {
  template <class In>
  struct type : nn::Block<type<In>> {
    nn::Param<Shape<InUnits, Units>> weight;  // torch.randn by default
    nn::Param<Shape<Units>> bias;
    CTNN_MEMBERS(weight, bias)
    auto forward(auto X) { return relu(matmul(X, weight) + bias); }
    static std::string type_name() { return "MyLinear"; }
  };
  template <class In, class Path>
  using bind = nn::BoundBlock<type<In>, Path>;
};

}  // namespace seed

#endif
