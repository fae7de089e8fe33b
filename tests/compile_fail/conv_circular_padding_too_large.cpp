// Circular padding 4 on a 3-pixel-high input would wrap around more than once.
// EXPECT: ERROR_circular_padding_larger_than_input<ctnn::layer<0(UL)?>,\s?ctnn::padding<4(UL)?,\s?1(UL)?>,\s?ctnn::input<3(UL)?,\s?8(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1,
                                       .out_channels = 2,
                                       .kernel_size = 3,
                                       .padding = {4, 1},
                                       .padding_mode = nn::PaddingMode::circular}>>;
using In = ctnn::Shape<1, 3, 8>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1,
                                       .out_channels = 2,
                                       .kernel_size = 3,
                                       .padding = {3, 1},
                                       .padding_mode = nn::PaddingMode::circular}>>;
using In = ctnn::Shape<1, 3, 8>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
