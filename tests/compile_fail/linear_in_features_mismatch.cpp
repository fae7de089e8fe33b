// nn::Linear<7, 1> after a layer that gives 8 features: in_features must be 8.
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<2(UL)?>,\s?ctnn::in_features<7(UL)?>,\s?ctnn::inferred_in_features<8(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<7, 1>>;
#else
using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 1>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
