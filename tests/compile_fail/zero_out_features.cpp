// nn::LazyLinear<0>: a layer with no outputs.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<1(UL)?>,\s?ctnn::out_features<0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<4, 8>, nn::LazyLinear<0>>;
#else
using Net = nn::Sequential<nn::Linear<4, 8>, nn::LazyLinear<2>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
