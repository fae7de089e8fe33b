// libtorch baseline for bench_resnet (compiled in with -Dbaselines=enabled): D2L's ResNet-18
// (8.6) and BN-LeNet (8.5) in torch::nn, the same batches, cross-entropy and SGD learning rates
// as bench_resnet.cpp, on one thread. libtorch's C++ API has no Lazy modules, so every layer
// names its input channels / features (what the book's LazyConv2d, LazyBatchNorm2d and
// LazyLinear infer at the first forward); the layers, their order and their options are the
// book's. PyTorch's default initialization (the timing does not depend on it).
#include "common.hpp"

#include <torch/torch.h>

using namespace ctnn_bench;
namespace tnn = torch::nn;

namespace {

// D2L 8.6's Residual:
//
//   class Residual(nn.Module):
//       def __init__(self, num_channels, use_1x1conv=False, strides=1):
//           super().__init__()
//           self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
//           self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
//           if use_1x1conv:
//               self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
//           else:
//               self.conv3 = None
//           self.bn1 = nn.LazyBatchNorm2d()
//           self.bn2 = nn.LazyBatchNorm2d()
//       def forward(self, X):
//           Y = F.relu(self.bn1(self.conv1(X)))
//           Y = self.bn2(self.conv2(Y))
//           if self.conv3:
//               X = self.conv3(X)
//           Y += X
//           return F.relu(Y)
struct ResidualImpl : tnn::Module {
  ResidualImpl(std::int64_t in_channels, std::int64_t num_channels, bool use_1x1conv = false, std::int64_t strides = 1)
      : conv1(register_module(
            "conv1", tnn::Conv2d(tnn::Conv2dOptions(in_channels, num_channels, 3).padding(1).stride(strides)))),
        conv2(register_module("conv2", tnn::Conv2d(tnn::Conv2dOptions(num_channels, num_channels, 3).padding(1)))),
        bn1(register_module("bn1", tnn::BatchNorm2d(num_channels))),
        bn2(register_module("bn2", tnn::BatchNorm2d(num_channels))) {
    if (use_1x1conv)
      conv3 = register_module("conv3", tnn::Conv2d(tnn::Conv2dOptions(in_channels, num_channels, 1).stride(strides)));
  }
  torch::Tensor forward(torch::Tensor X) {
    auto Y = torch::relu(bn1->forward(conv1->forward(X)));
    Y = bn2->forward(conv2->forward(Y));
    if (conv3) X = conv3->forward(X);
    Y += X;
    return torch::relu(Y);
  }
  tnn::Conv2d conv1, conv2, conv3{nullptr};
  tnn::BatchNorm2d bn1, bn2;
};
TORCH_MODULE(Residual);

// An nn.Sequential inside an nn.Sequential: libtorch's Sequential cannot hold one directly (its
// forward is a template), so the nested ones are this subclass with a plain forward.
struct NestedImpl : tnn::SequentialImpl {
  using tnn::SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return tnn::SequentialImpl::forward(x); }
};
TORCH_MODULE(Nested);

// D2L 8.6's ResNet(arch=((2, 64), (2, 128), (2, 256), (2, 512))), i.e. ResNet18:
//
//   def b1(self):
//       return nn.Sequential(
//           nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
//           nn.LazyBatchNorm2d(), nn.ReLU(),
//           nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
//   def block(self, num_residuals, num_channels, first_block=False):
//       blk = []
//       for i in range(num_residuals):
//           if i == 0 and not first_block:
//               blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
//           else:
//               blk.append(Residual(num_channels))
//       return nn.Sequential(*blk)
//   self.net = nn.Sequential(self.b1())
//   for i, b in enumerate(arch):
//       self.net.add_module(f'b{i+2}', self.block(*b, first_block=(i==0)))
//   self.net.add_module('last', nn.Sequential(
//       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes)))
Nested resnet_block(std::int64_t in_channels, std::int64_t num_residuals, std::int64_t num_channels,
                    bool first_block = false) {
  Nested blk;
  for (std::int64_t i = 0; i < num_residuals; ++i) {
    if (i == 0 && !first_block) blk->push_back(Residual(in_channels, num_channels, true, 2));
    else blk->push_back(Residual(i == 0 ? in_channels : num_channels, num_channels));
  }
  return blk;
}

tnn::Sequential resnet18() {
  tnn::Sequential net;
  net->push_back("b1", Nested(tnn::Conv2d(tnn::Conv2dOptions(1, 64, 7).stride(2).padding(3)), tnn::BatchNorm2d(64),
                              tnn::ReLU(), tnn::MaxPool2d(tnn::MaxPool2dOptions(3).stride(2).padding(1))));
  const std::int64_t arch[4][2] = {{2, 64}, {2, 128}, {2, 256}, {2, 512}};
  // f'b{i+2}' (spelled out: "b" + std::to_string(i + 2) trips a g++ 12 -Wrestrict false positive at -O3)
  const char* names[4] = {"b2", "b3", "b4", "b5"};
  std::int64_t channels = 64;
  for (int i = 0; i < 4; ++i) {
    net->push_back(names[i], resnet_block(channels, arch[i][0], arch[i][1], i == 0));
    channels = arch[i][1];
  }
  net->push_back("last", Nested(tnn::AdaptiveAvgPool2d(tnn::AdaptiveAvgPool2dOptions({1, 1})), tnn::Flatten(),
                                tnn::Linear(channels, 10)));
  return net;
}

// D2L 8.5's BNLeNet (concise):
//
//   nn.Sequential(
//       nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
//       nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
//       nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(), nn.Sigmoid(),
//       nn.LazyLinear(84), nn.LazyBatchNorm1d(), nn.Sigmoid(), nn.LazyLinear(num_classes))
tnn::Sequential bn_lenet() {
  return tnn::Sequential(tnn::Conv2d(tnn::Conv2dOptions(1, 6, 5)), tnn::BatchNorm2d(6), tnn::Sigmoid(),
                         tnn::AvgPool2d(tnn::AvgPool2dOptions(2).stride(2)), tnn::Conv2d(tnn::Conv2dOptions(6, 16, 5)),
                         tnn::BatchNorm2d(16), tnn::Sigmoid(), tnn::AvgPool2d(tnn::AvgPool2dOptions(2).stride(2)),
                         tnn::Flatten(), tnn::Linear(16 * 4 * 4, 120), tnn::BatchNorm1d(120), tnn::Sigmoid(),
                         tnn::Linear(120, 84), tnn::BatchNorm1d(84), tnn::Sigmoid(), tnn::Linear(84, 10));
}

void count_examples(benchmark::State& state, std::int64_t batch) {
  state.counters["examples/s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
}

/// optimizer.zero_grad(), forward, cross_entropy, backward(), SGD step; one untimed step first.
void train_steps(benchmark::State& state, tnn::Sequential net, std::int64_t side, std::int64_t batch, double lr) {
  torch::set_num_threads(1);
  net->train();
  auto X = torch::rand({batch, 1, side, side});
  auto y = torch::arange(batch, torch::kLong).remainder(10);
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(lr));
  auto step = [&] {
    sgd.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(X), y);
    loss.backward();
    sgd.step();
    return loss.item<float>();
  };
  step();
  for (auto _ : state) benchmark::DoNotOptimize(step());
  count_examples(state, batch);
}

void BM_resnet18_train_step_libtorch(benchmark::State& state) {
  train_steps(state, resnet18(), state.range(0), state.range(1), double(resnet_lr));
}
BENCHMARK(BM_resnet18_train_step_libtorch)
    ->Name("BM_resnet18_train_step/libtorch")
    ->Args({28, static_cast<std::int64_t>(resnet_batch)})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet18_train_step_libtorch)
    ->Name("BM_resnet18_train_step/libtorch")
    ->Args({96, static_cast<std::int64_t>(resnet_batch)})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

void BM_resnet18_eval_forward_libtorch(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  auto net = resnet18();
  net->eval();
  auto X = torch::rand({state.range(1), 1, state.range(0), state.range(0)});
  auto forward = [&] {
    auto Y = net->forward(X);
    benchmark::DoNotOptimize(Y.data_ptr<float>());
  };
  forward();  // untimed
  for (auto _ : state) forward();
  count_examples(state, state.range(1));
}
BENCHMARK(BM_resnet18_eval_forward_libtorch)
    ->Name("BM_resnet18_eval_forward/libtorch")
    ->Args({28, static_cast<std::int64_t>(resnet_batch)})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_resnet18_eval_forward_libtorch)
    ->Name("BM_resnet18_eval_forward/libtorch")
    ->Args({96, static_cast<std::int64_t>(resnet_batch)})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

void BM_bn_lenet_train_step_libtorch(benchmark::State& state) {
  train_steps(state, bn_lenet(), 28, state.range(0), double(bn_lenet_lr));
}
BENCHMARK(BM_bn_lenet_train_step_libtorch)
    ->Name("BM_bn_lenet_train_step/libtorch")
    ->Arg(static_cast<std::int64_t>(bn_lenet_batch))
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
