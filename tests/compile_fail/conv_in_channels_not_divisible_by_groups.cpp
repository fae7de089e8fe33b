// Conv2d(3, 4, 3, groups=2): in_channels must be divisible by groups.
// EXPECT: ERROR_conv2d_in_channels_not_divisible_by_groups<ctnn::layer<0(UL)?>,\s?ctnn::in_channels<3(UL)?>,\s?ctnn::groups<2(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 2}>>;
using In = ctnn::Shape<3, 8, 8>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .groups = 1}>>;
using In = ctnn::Shape<3, 8, 8>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
