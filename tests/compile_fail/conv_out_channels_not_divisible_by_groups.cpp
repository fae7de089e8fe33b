// LazyConv2d(6 -> 9, groups=2): out_channels must be divisible by groups.
// EXPECT: ERROR_conv2d_out_channels_not_divisible_by_groups<ctnn::layer<0(UL)?>,\s?ctnn::out_channels<9(UL)?>,\s?ctnn::groups<2(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::LazyConv2d<{.out_channels = 9, .kernel_size = 3, .groups = 2}>>;
using In = ctnn::Shape<6, 8, 8>;
#else
using Net = nn::Sequential<nn::LazyConv2d<{.out_channels = 10, .kernel_size = 3, .groups = 2}>>;
using In = ctnn::Shape<6, 8, 8>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
