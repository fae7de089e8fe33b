// Conv2d with dilation (0, 1).
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::dilation<0(UL)?,\s?1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .dilation = {0, 1}}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .dilation = {2, 1}}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
