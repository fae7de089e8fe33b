// AvgPool2d with a kernel of 0.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::kernel<0(UL)?,\s?0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::AvgPool2d<{.kernel_size = 0}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::AvgPool2d<{.kernel_size = 1}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
