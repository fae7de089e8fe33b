// Dive into Deep Learning, "Layers and Modules" and "Custom Layers": custom blocks in ctnn.
// Each block is the PyTorch class in the comment above it, written with nn::Block (no backward:
// it is derived at compile time from forward). See docs/custom_blocks.md.
#include <algorithm>
#include <iostream>
#include <numeric>

#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;
using ctnn::Model, ctnn::Shape;

// class MLP(nn.Module):
//     def __init__(self):
//         super().__init__(); self.hidden = nn.LazyLinear(256); self.out = nn.LazyLinear(10)
//     def forward(self, X): return self.out(F.relu(self.hidden(X)))
template <class In>
struct MLP : nn::Block<MLP<In>> {
  nn::Layer<nn::LazyLinear<256>, In> hidden;
  nn::Layer<nn::LazyLinear<10>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, out)
  auto forward(auto X) { return out(relu(hidden(X))); }
  static std::string type_name() { return "MLP"; }
};

// class FixedHiddenMLP(nn.Module): rand_weight = torch.rand((20, 20)) (a constant), one
// LazyLinear(20) used twice, `while X.abs().sum() > 1: X /= 2`, return X.sum().
// X.sum() is over the whole batch, as in PyTorch: one value for the batch (output Shape<>).
template <class In>
struct FixedHiddenMLP : nn::Block<FixedHiddenMLP<In>> {
  ctnn::Tensor<Shape<20, 20>> rand_weight;
  nn::Layer<nn::LazyLinear<20>, In> linear;
  CTNN_MEMBERS(rand_weight, linear)
  void reset_parameters(ctnn::Generator& gen) { ctnn::rand_(rand_weight, gen); }
  auto forward(auto X) {
    auto H = linear(relu(mm(linear(X), rand_weight) + 1));
    float scale = 1.0f;
    while ((H * scale).abs().sum().item() > 1.0f) scale /= 2.0f;  // X /= 2: a run-time scale
    return (H * scale).sum();
  }
  static std::string type_name() { return "FixedHiddenMLP"; }
};

// class CenteredLayer(nn.Module):
//     def forward(self, X): return X - X.mean()
template <class In>
struct CenteredLayer : nn::Block<CenteredLayer<In>> {
  auto forward(auto X) { return X - X.mean(); }
  static std::string type_name() { return "CenteredLayer"; }
};

// class MyLinear(nn.Module):
//     def __init__(self, in_units, units):
//         self.weight = nn.Parameter(torch.randn(in_units, units)); self.bias = nn.Parameter(torch.randn(units,))
//     def forward(self, X): return F.relu(torch.matmul(X, self.weight) + self.bias)
template <std::size_t InUnits, std::size_t Units>
struct MyLinear {
  template <class In>
  struct type : nn::Block<type<In>> {
    nn::Param<Shape<InUnits, Units>> weight;
    nn::Param<Shape<Units>> bias;
    CTNN_MEMBERS(weight, bias)
    auto forward(auto X) { return relu(matmul(X, weight) + bias); }
    static std::string type_name() { return "MyLinear"; }
  };
  template <class In, class Path>
  using bind = nn::BoundBlock<type<In>, Path>;  // MyLinear<64, 8> is a spec, like nn::Linear<64, 8>
};

// class Scale(nn.Module):
//     def __init__(self):
//         super().__init__(); self.log_s = nn.Parameter(torch.zeros(4)); self.shift = nn.Parameter(torch.zeros(4))
//     def forward(self, X): s = torch.exp(self.log_s); return X * s + self.shift / (1 + s)
// A parameter on its own is an expression: exp(log_s), 1 + s, shift / ... need no X.
template <class In>
struct Scale : nn::Block<Scale<In>> {
  nn::Param<Shape<4>> log_s, shift;
  CTNN_MEMBERS(log_s, shift)
  void reset_parameters(ctnn::Generator&) {
    ctnn::fill_(log_s, 0.0f);
    ctnn::fill_(shift, 0.0f);
  }
  auto forward(auto X) {
    auto s = exp(log_s);
    return X * s + shift / (1 + s);
  }
};

// class Scaled(nn.Module):
//     def __init__(self):
//         super().__init__(); self.child = nn.LazyLinear(3); self.w = nn.Parameter(torch.randn(3))
//     def forward(self, X): return self.child(X) * self.w
// state_dict lists the block's own parameters first, as PyTorch: "w", "child.weight", "child.bias".
template <class In>
struct Scaled : nn::Block<Scaled<In>> {
  nn::Layer<nn::LazyLinear<3>, In> child;
  nn::Param<Shape<3>> w;
  CTNN_MEMBERS(child, w)
  auto forward(auto X) { return child(X) * w; }
};

int main() {
  ctnn::manual_seed(42);
  auto X = ctnn::rand<Shape<20>>(2);  // X = torch.rand(2, 20)

  // net = MLP(); net(X).shape
  Model<nn::block<MLP>, Shape<20>> net;
  std::cout << net << '\n' << net(X) << '\n';
  for (auto&& [name, t] : net.state_dict()) std::cout << name << ' ' << t.shape_str() << '\n';

  // net = FixedHiddenMLP(); net(X): one value for the whole batch
  Model<nn::block<FixedHiddenMLP>, Shape<20>> fixed;
  std::cout << "FixedHiddenMLP: " << fixed(X).data()[0] << '\n';

  // chimera = nn.Sequential(NestMLP(), nn.LazyLinear(20), FixedHiddenMLP()) — blocks nest in Sequentials
  Model<nn::Sequential<nn::block<MLP>, nn::LazyLinear<20>, nn::block<FixedHiddenMLP>>, Shape<20>> chimera;
  std::cout << chimera << '\n' << chimera.summary() << "chimera(X): " << chimera(X).data()[0] << '\n';

  // layer = CenteredLayer(); net = nn.Sequential(nn.LazyLinear(128), CenteredLayer()); Y.mean()
  Model<nn::Sequential<nn::LazyLinear<128>, nn::block<CenteredLayer>>, Shape<8>> centered;
  const auto C = centered(ctnn::rand<Shape<8>>(4));
  std::cout << "mean after CenteredLayer: " << std::accumulate(C.begin(), C.end(), 0.0) / double(C.numel()) << '\n';

  // net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1)); net(torch.rand(2, 64))
  Model<nn::Sequential<MyLinear<64, 8>, MyLinear<8, 1>>, Shape<64>> mine;
  std::cout << mine(ctnn::rand<Shape<64>>(2)) << '\n' << mine.state_dict()["0.bias"] << '\n';

  // Scale()(torch.rand(2, 4)) with log_s = shift = 0: X * 1 + 0
  Model<nn::block<Scale>, Shape<4>> scale;
  std::cout << scale(ctnn::rand<Shape<4>>(2)) << '\n';

  // net = nn.Sequential(nn.LazyLinear(5), nn.ReLU(), Scaled()); net(X).sum().backward()
  // for name, p in net.named_parameters(): print(name, p.shape, p.grad)
  Model<nn::Sequential<nn::LazyLinear<5>, nn::ReLU, nn::block<Scaled>>, Shape<4>> scaled;
  const auto X4 = ctnn::rand<Shape<4>>(2);  // alive until backward (forward keeps a pointer to it)
  scaled.forward(X4);
  auto dy = scaled.output_grad();  // dL/dy of L = y.sum(): ones
  std::fill_n(dy.data(), dy.numel(), 1.0f);
  scaled.backward();
  for (auto&& [name, p] : scaled.named_parameters()) std::cout << name << ' ' << p.shape_str() << ' ' << p.grad << '\n';
  std::cout << "2.w grad: " << scaled.named_parameters()["2.w"].grad << '\n';  // dict(net.named_parameters())["2.w"].grad

  // A few training steps through the blocks: backward is derived from forward.
  auto Xt = ctnn::randn<Shape<20>>(32);
  std::vector<std::int64_t> labels(32);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::int64_t>(i % 10);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd{.lr = 0.5f};
  for (int step = 0; step < 5; ++step) {
    net.zero_grad();
    net.forward(Xt);
    std::cout << "step " << step << " loss " << net.backward(loss, labels) << '\n';
    sgd.step(net);
  }
  return 0;
}
