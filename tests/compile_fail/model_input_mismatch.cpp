// The first layer expects 5 features, the model input gives 4.
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<0(UL)?>,\s?ctnn::in_features<5(UL)?>,\s?ctnn::inferred_in_features<4(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<5, 3>, nn::ReLU, nn::Linear<3, 1>>;
#else
using Net = nn::Sequential<nn::Linear<4, 3>, nn::ReLU, nn::Linear<3, 1>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
