// MaxPool2d(3, stride=2) on a 2x2 map: no window fits (ceil_mode=True would give 1x1).
// EXPECT: ERROR_pool2d_output_size_zero<ctnn::layer<2(UL)?>,\s?ctnn::input<2(UL)?,\s?2(UL)?>,\s?ctnn::kernel<3(UL)?,\s?3(UL)?>,\s?ctnn::padding<0(UL)?,\s?0(UL)?>,\s?ctnn::stride<2(UL)?,\s?2(UL)?>,\s?ctnn::dilation<1(UL)?,\s?1(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 2}>, nn::ReLU, nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>>;
using In = ctnn::Shape<3, 4, 4>;
#else
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 2}>, nn::ReLU,
                           nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .ceil_mode = true}>>;
using In = ctnn::Shape<3, 4, 4>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
