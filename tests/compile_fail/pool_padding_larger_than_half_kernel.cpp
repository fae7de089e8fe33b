// MaxPool2d(3, padding=2): PyTorch wants padding <= kernel_size / 2.
// EXPECT: ERROR_pool2d_padding_larger_than_half_kernel<ctnn::layer<0(UL)?>,\s?ctnn::padding<2(UL)?,\s?2(UL)?>,\s?ctnn::kernel<3(UL)?,\s?3(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 2}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
