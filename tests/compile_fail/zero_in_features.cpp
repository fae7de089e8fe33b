// nn::Linear<0, 3>: a layer with no inputs.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::in_features<0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<0, 3>, nn::ReLU, nn::Linear<3, 1>>;
#else
using Net = nn::Sequential<nn::Linear<4, 3>, nn::ReLU, nn::Linear<3, 1>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
