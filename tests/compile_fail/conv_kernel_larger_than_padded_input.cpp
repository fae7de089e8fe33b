// A 5x5 kernel on the 4x4 map after conv(5) and pooling on a 12x12 image.
// EXPECT: ERROR_conv2d_kernel_larger_than_padded_input<ctnn::layer<3(UL)?>,\s?ctnn::input<4(UL)?,\s?4(UL)?>,\s?ctnn::padding<0(UL)?,\s?0(UL)?>,\s?ctnn::kernel<5(UL)?,\s?5(UL)?>,\s?ctnn::dilation<1(UL)?,\s?1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>, nn::Sigmoid,
                           nn::AvgPool2d<{.kernel_size = 2}>, nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>,
                           nn::Flatten, nn::LazyLinear<10>>;
using In = ctnn::Shape<1, 12, 12>;
#else
using Net = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>, nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2}>,
    nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5, .padding = 1}>, nn::Flatten, nn::LazyLinear<10>>;
using In = ctnn::Shape<1, 12, 12>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
