// Conv2d on a [28, 28] sample: Conv2d needs [C, H, W].
// EXPECT: ERROR_input_rank_not_3<ctnn::layer<0(UL)?>,\s?ctnn::Shape<28(UL)?,\s?28(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>>;
using In = ctnn::Shape<28, 28>;
#else
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
