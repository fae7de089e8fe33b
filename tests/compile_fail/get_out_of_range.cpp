// net.get<3>() on a network of 3 layers (valid: 0, 1, 2).
// EXPECT: ERROR_layer_index_out_of_range<ctnn::index<3(UL)?>,\s?ctnn::num_layers<3(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 1>>;

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
#ifdef CTNN_EXPECT_COMPILE_FAIL
  auto& last = net.get<3>();
#else
  auto& last = net.get<2>();
#endif
  (void)last;
}
