// Reflect padding 3 on a 3-pixel-high input (F.pad needs padding < input size).
// EXPECT: ERROR_reflect_padding_not_smaller_than_input<ctnn::layer<0(UL)?>,\s?ctnn::padding<3(UL)?,\s?3(UL)?>,\s?ctnn::input<3(UL)?,\s?8(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<
    {.in_channels = 1, .out_channels = 2, .kernel_size = 7, .padding = 3, .padding_mode = nn::PaddingMode::reflect}>>;
using In = ctnn::Shape<1, 3, 8>;
#else
using Net = nn::Sequential<nn::Conv2d<
    {.in_channels = 1, .out_channels = 2, .kernel_size = 7, .padding = 3, .padding_mode = nn::PaddingMode::replicate}>>;
using In = ctnn::Shape<1, 3, 8>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
