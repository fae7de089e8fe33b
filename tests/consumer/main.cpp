// The consumer program of tests/consumer/run_consumer.sh: one small translation unit built
// against an installed ctnn, once through CMake (find_package(ctnn), ctnn::ctnn) and once
// through pkg-config (ctnn.pc). It uses the three dependencies the packages must carry: Hana
// and xsimd through a forward pass, zlib through ctnn::io::read_idx (gzopen must link), and
// the installed ctnn/models/d2l.hpp. It prints one line the script compares exactly.
#include <cstdio>
#include <exception>

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;

// nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.LazyLinear(2))
using Net = nn::Sequential<nn::Linear<4, 3>, nn::ReLU, nn::LazyLinear<2>>;
static_assert(Model<Net, Shape<4>>::parameter_count == 4 * 3 + 3 + 3 * 2 + 2);
static_assert(Model<ctnn::models::LeNet, ctnn::models::FashionMNISTImage>::parameter_count == 61'706);

int main() {
  Model<Net, Shape<4>> net;
  // Weights 0.5, biases 0 except the last layer's 0.25: each hidden unit is 4 * 0.5 = 2, each
  // output 3 * 2 * 0.5 + 0.25 = 3.25, exactly in float.
  net.apply([](auto& layer) {
    if constexpr (nn::is_linear<decltype(layer)>) {
      nn::init::constant_(layer.weight, 0.5f);
      nn::init::zeros_(layer.bias);
    }
  });
  nn::init::constant_(net.get<2>().bias, 0.25f);
  Batch<Shape<4>> X(2);
  for (float& x : X) x = 1.0f;
  const auto Y = net(X);

  bool zlib_error = false;  // a missing .gz file: read_idx reports it (the call links zlib's gzopen)
  try {
    (void)ctnn::io::read_idx("no-such-file-idx1-ubyte.gz");
  } catch (const std::exception&) {
    zlib_error = true;
  }
  std::printf("ctnn consumer: y = [%g, %g; %g, %g], read_idx error %s\n", double(Y(0, 0)), double(Y(0, 1)),
              double(Y(1, 0)), double(Y(1, 1)), zlib_error ? "ok" : "MISSING");
  return 0;
}
