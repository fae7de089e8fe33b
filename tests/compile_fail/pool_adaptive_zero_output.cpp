// AdaptiveAvgPool2d<0, 1>: an output of 0 rows.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::output_size<0(UL)?,\s?1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::AdaptiveAvgPool2d<0, 1>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::AdaptiveAvgPool2d<1, 1>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
