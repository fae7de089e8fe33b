// LeNet's second convolution declared with 5 input channels; the first gives 6.
// EXPECT: ERROR_conv2d_in_channels_mismatch<ctnn::layer<3(UL)?>,\s?ctnn::in_channels<5(UL)?>,\s?ctnn::inferred_in_channels<6(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>,
                           nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
                           nn::Conv2d<{.in_channels = 5, .out_channels = 16, .kernel_size = 5}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>,
                           nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
                           nn::Conv2d<{.in_channels = 6, .out_channels = 16, .kernel_size = 5}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
