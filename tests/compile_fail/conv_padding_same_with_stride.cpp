// padding='same' with stride 2 (PyTorch: not supported for strided convolutions).
// EXPECT: ERROR_conv2d_padding_same_with_stride<ctnn::layer<0(UL)?>,\s?ctnn::stride<2(UL)?,\s?2(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .stride = 2, .padding = nn::padding_same}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net =
    nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .stride = 2, .padding = 1}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
