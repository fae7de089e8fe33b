// Dive into Deep Learning, "Deep Learning Computation" / "File I/O", in ctnn.
//
// The book pickles with torch.save; ctnn writes safetensors files, which PyTorch reads too
// (docs/save_load.md). Each section mirrors the PyTorch code in the comment above it.
//
//   save_load [DIR]    writes its files into DIR (default: a fresh directory under /tmp)
//
// Besides the book's files it writes DIR/expected.txt: every saved tensor, and the MLP's input
// and output, in tests/reference's text format. tools/check_ctnn_safetensors.py reads the
// safetensors files with PyTorch and checks them against it.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <ctnn/ctnn.hpp>

namespace fs = std::filesystem;
namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;

namespace {

void section(const char* title) { std::cout << "\n==== " << title << " ====\n"; }

/// Appends one tensor to a file in tests/reference's format (tools/README.md).
void write_reference(std::ofstream& out, const std::string& name, const std::vector<std::size_t>& shape,
                     const float* v) {
  std::size_t n = 1;
  out << "tensor " << name << ' ' << shape.size();
  for (auto d : shape) {
    out << ' ' << d;
    n *= d;
  }
  out << '\n';
  char buf[32];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v[i]));
    out << buf << (i % 8 == 7 || i + 1 == n ? '\n' : ' ');
  }
}

fs::path default_dir() {
  for (unsigned i = 0;; ++i) {
    auto p = fs::temp_directory_path() /
             ("ctnn_save_load_" + std::to_string(std::random_device{}()) + "_" + std::to_string(i));
    if (fs::create_directory(p)) return p;
  }
}

}  // namespace

// net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))  (the book's MLP)
using MLP = nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>;

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? fs::path(argv[1]) : default_dir();
  fs::create_directories(dir);
  std::ofstream expected(dir / "expected.txt");
  expected << "ctnn-reference 1\n# written by examples/save_load.cpp: the tensors it saved in " << dir.string() << "\n";

  section("Loading and Saving Tensors");
  // x = torch.arange(4); torch.save(x, 'x-file')
  Tensor<Shape<4>> x{0, 1, 2, 3};
  ctnn::save(x, dir / "x-file");
  write_reference(expected, "x-file.tensor", {4}, x.data());
  // x2 = torch.load('x-file')
  Tensor<Shape<4>> x2;
  ctnn::load(x2, dir / "x-file");
  std::cout << x2 << '\n';

  // y = torch.zeros(4); torch.save([x, y], 'x-files')   (a list: keys "0", "1" in safetensors)
  Tensor<Shape<4>> y;
  ctnn::save_tensors({{"0", x}, {"1", y}}, dir / "x-files");
  auto xy = ctnn::load_tensors(dir / "x-files");
  std::cout << "(" << Tensor<Shape<4>>(xy.at("0").values) << ", " << Tensor<Shape<4>>(xy.at("1").values) << ")\n";
  write_reference(expected, "x-files.0", {4}, x.data());
  write_reference(expected, "x-files.1", {4}, y.data());

  // mydict = {'x': x, 'y': y}; torch.save(mydict, 'mydict'); torch.load('mydict')
  ctnn::save_tensors({{"x", x}, {"y", y}}, dir / "mydict");
  auto mydict2 = ctnn::load_tensors(dir / "mydict");
  std::cout << "{'x': " << Tensor<Shape<4>>(mydict2.at("x").values)
            << ", 'y': " << Tensor<Shape<4>>(mydict2.at("y").values) << "}\n";
  write_reference(expected, "mydict.x", {4}, x.data());
  write_reference(expected, "mydict.y", {4}, y.data());

  section("Loading and Saving Model Parameters");
  // net = MLP(); X = torch.randn(size=(2, 20)); Y = net(X)
  Model<MLP, Shape<20>> net;
  auto X = ctnn::randn<Shape<20>>(2);
  auto Y = net(X);
  // torch.save(net.state_dict(), 'mlp.params')
  ctnn::save(net, dir / "mlp.params");
  for (auto&& [name, t] : net.state_dict()) write_reference(expected, "mlp.params." + name, t.shape(), t.data());
  write_reference(expected, "input", X.sizes(), X.data());
  write_reference(expected, "output", Y.sizes(), Y.data());
  // clone = MLP(); clone.load_state_dict(torch.load('mlp.params')); clone.eval()
  Model<MLP, Shape<20>> clone(12345);
  ctnn::load(clone, dir / "mlp.params");
  std::cout << clone << '\n';
  // Y_clone = clone(X); Y_clone == Y
  auto Y_clone = clone(X);
  bool same = true;
  for (std::size_t i = 0; i < Y.numel(); ++i) same = same && Y_clone.data()[i] == Y.data()[i];
  std::cout << "Y_clone == Y: " << (same ? "all True" : "MISMATCH") << '\n';

  section("Mistakes are caught before anything changes");
  // The MLP's file into a network of another shape: a clear error, and the network untouched.
  Model<nn::Sequential<nn::Linear<20, 128>, nn::ReLU, nn::Linear<128, 10>>, Shape<20>> other;
  try {
    ctnn::load(other, dir / "mlp.params");
  } catch (const ctnn::io::format_error& e) {
    std::cout << e.what() << '\n';
  }

  std::cout << "\nfiles in " << dir.string() << '\n';
  return same ? 0 : 1;
}
