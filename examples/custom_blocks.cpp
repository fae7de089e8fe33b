// Dive into Deep Learning, "Layers and Modules" and "Custom Layers": custom blocks in ctnn.
// Each block is a PyTorch class written with nn::Block (no backward: it is derived at compile
// time from forward). See docs/custom_blocks.md.
//
// The book's blocks (MLP, FixedHiddenMLP, CenteredLayer, MyLinear; also MySequential) are
// defined once, in include/ctnn/models/d2l.hpp, chapter 6 "Builders' Guide", each below its
// PyTorch code; this example uses them from there. The two blocks defined below (Scale, Scaled)
// are this example's own: a parameter used on its own, and a block with a child and a parameter.
#include <algorithm>
#include <iostream>
#include <numeric>

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>

namespace nn = ctnn::nn;
using ctnn::Model, ctnn::Shape;
using ctnn::models::CenteredLayer, ctnn::models::FixedHiddenMLP, ctnn::models::MLP, ctnn::models::MyLinear;

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
  std::cout << "2.w grad: " << scaled.named_parameters()["2.w"].grad
            << '\n';  // dict(net.named_parameters())["2.w"].grad

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
