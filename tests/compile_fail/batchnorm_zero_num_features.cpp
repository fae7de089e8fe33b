// nn::BatchNorm2d<{}> without num_features (0): only the Lazy forms infer it.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::num_features<0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::BatchNorm2d<{.eps = 1e-3f}>>;
#else
using Net = nn::Sequential<nn::LazyBatchNorm2d<{.eps = 1e-3f}>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<3, 4, 4>> net;
  (void)net;
}
