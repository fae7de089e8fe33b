// nn::BatchNorm1d on a [C, H, W] sample: it takes [N, C] or [N, C, L] (BatchNorm2d is for images).
// EXPECT: ERROR_batchnorm1d_input_rank<ctnn::layer<1(UL)?>,\s?ctnn::Shape<6(UL)?,\s?24(UL)?,\s?24(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>, nn::LazyBatchNorm1d<>>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>, nn::LazyBatchNorm2d<>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<1, 28, 28>> net;
  (void)net;
}
