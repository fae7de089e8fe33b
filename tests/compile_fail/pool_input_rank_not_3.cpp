// MaxPool2d after Flatten: pooling needs [C, H, W].
// EXPECT: ERROR_input_rank_not_3<ctnn::layer<1(UL)?>,\s?ctnn::Shape<784(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Flatten, nn::MaxPool2d<{.kernel_size = 2}>>;
using In = ctnn::Shape<1, 28, 28>;
#else
using Net = nn::Sequential<nn::MaxPool2d<{.kernel_size = 2}>, nn::Flatten>;
using In = ctnn::Shape<1, 28, 28>;
#endif

int main() {
  ctnn::Model<Net, In> net;
  (void)net;
}
