// A 3x3 kernel with dilation 3 spans 7 pixels: more than 5 + 2*0.
// EXPECT: ERROR_conv2d_kernel_larger_than_padded_input<ctnn::layer<0(UL)?>,\s?ctnn::input<5(UL)?,\s?5(UL)?>,\s?ctnn::padding<0(UL)?,\s?0(UL)?>,\s?ctnn::kernel<3(UL)?,\s?3(UL)?>,\s?ctnn::dilation<3(UL)?,\s?3(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 2, .kernel_size = 3, .dilation = 3}>>;
using In = ctnn::Shape<1, 5, 5>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 2, .kernel_size = 3, .dilation = 2}>>;
using In = ctnn::Shape<1, 5, 5>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
