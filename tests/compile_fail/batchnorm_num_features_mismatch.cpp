// nn::BatchNorm2d<{.num_features = 8}> after a conv that gives 6 channels.
// EXPECT: ERROR_batchnorm_num_features_mismatch<ctnn::layer<1(UL)?>,\s?ctnn::num_features<8(UL)?>,\s?ctnn::inferred_num_features<6(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t features = 8;
#else
constexpr std::size_t features = 6;
#endif
using Net = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5}>,
                           nn::BatchNorm2d<{.num_features = features}>, nn::ReLU>;

int main() {
  ctnn::Model<Net, ctnn::Shape<1, 28, 28>> net;
  (void)net;
}
