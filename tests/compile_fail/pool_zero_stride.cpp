// MaxPool2d with stride (2, 0): only a stride of 0 in both directions means 'the kernel size'.
// EXPECT: ERROR_zero_sized_dimension<ctnn::layer<0(UL)?>,\s?ctnn::stride<2(UL)?,\s?0(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 2, .stride = {2, 0}}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 2, .stride = {2, 1}}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
