// Conv2d with stride 0 (PyTorch: non-positive stride is not supported).
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<1(UL)?>,\s?ctnn::stride<0(UL)?,\s?0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::ReLU, nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .stride = 0}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::ReLU, nn::Conv2d<{.in_channels = 1, .out_channels = 4, .kernel_size = 3, .stride = 1}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
